//! `pop3`: a POP3 mail-fetching client.
pub mod pop3;
