//! End-to-end tests of the real `context-store` binary over stdio. One test binary keeps
//! the build lean; each area has its own module.

mod backup;
mod bad_input;
mod cache;
mod client_defects;
mod concurrency;
mod context;
mod conversations;
mod damage;
mod embed;
mod faults;
mod faults_storage;
mod health;
mod hostile;
mod hostile_security;
mod indexing;
mod preferences;
mod profiles;
mod protocol;
mod real_clients;
mod redis;
mod search;
mod semantic;
mod startup;
mod support;
mod transfer;
mod transport_edges;
