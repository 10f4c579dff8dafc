"""Front doors: HTTP, SFTP and MLLP. They never import each other."""
