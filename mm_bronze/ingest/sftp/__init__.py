"""The SFTP front door (asyncssh): a partner's finished upload is published before close returns."""
