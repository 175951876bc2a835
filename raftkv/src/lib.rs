//! raftkv placeholder
