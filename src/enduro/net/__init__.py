"""HTTP on the wire, shared by every path that talks to a server (load, flows, SSE, bursts,
readiness probes, scrapes, final reads): request serialization and response framing
(``wire``), connections (``conn``), the one-request client (``client``), TLS contexts
(``tls``), targets (``target``), and the template and condition languages compiled once at
plan load (``templates``, ``conditions``). Imports only ``base`` and ``plan``."""
