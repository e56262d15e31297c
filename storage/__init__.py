"""What must outlive the process: state files (atomic JSON, append-only CSV logs with torn-tail
repair, schema-checked reads) and run folders (id, manifest, status, resume). Every layer may
import it; it imports only the standard library and pandas (ARCHITECTURE.md, Layers)."""
