//! The one integration test binary: the real server on 127.0.0.1:0, real HTTP, real SQLite.

mod identity;
