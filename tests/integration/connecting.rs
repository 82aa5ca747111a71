//! Connecting to real deployments (issue 9): TLS, ACL users and passwords, Unix sockets,
//! Sentinel and Cluster, and keeping passwords out of every message.
