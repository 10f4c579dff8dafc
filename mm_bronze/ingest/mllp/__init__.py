"""The MLLP front door: HL7 v2 over TCP (or TLS), one ACK per message."""
