//! End-to-end tests live in `tests/`; this library is empty on purpose (a package needs a
//! target). Later issues add multi-node scenarios here, on loopback addresses only.
