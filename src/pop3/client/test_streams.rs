//! Scripted in-memory streams for the client's unit tests: server bytes in, the client's
//! writes recorded.

use std::io::{self, Cursor, Read, Write};

use super::{Client, Session};
use crate::pop3::MessageNumber;

/// A stream that hands out the scripted server bytes one byte per read and records
/// everything the client writes.
pub(super) struct OneByteStream {
    input: Cursor<Vec<u8>>,
    pub(super) written: Vec<u8>,
}

impl OneByteStream {
    pub(super) fn new(server: &[u8]) -> OneByteStream {
        OneByteStream {
            input: Cursor::new(server.to_vec()),
            written: Vec::new(),
        }
    }
}

impl Read for OneByteStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let len = buf.len().min(1);
        self.input.read(&mut buf[..len])
    }
}

impl Write for OneByteStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub(super) fn session(server: &[u8]) -> Session<OneByteStream> {
    let (client, _) = Client::connect(OneByteStream::new(server), None).unwrap();
    client.login_user("alice", "pw").unwrap()
}

pub(super) fn n(number: u32) -> MessageNumber {
    MessageNumber::new(number).unwrap()
}

/// A stream that serves scripted bytes and records what the client writes where the test
/// can still read it after the session (consumed by `quit`) is gone.
pub(super) struct SharedStream {
    input: Cursor<Vec<u8>>,
    written: std::rc::Rc<std::cell::RefCell<Vec<u8>>>,
}

impl Read for SharedStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for SharedStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub(super) fn shared_session(
    server: &[u8],
) -> (
    Session<SharedStream>,
    std::rc::Rc<std::cell::RefCell<Vec<u8>>>,
) {
    let written = std::rc::Rc::default();
    let stream = SharedStream {
        input: Cursor::new(server.to_vec()),
        written: std::rc::Rc::clone(&written),
    };
    let (client, _) = Client::connect(stream, None).unwrap();
    (client.login_user("alice", "pw").unwrap(), written)
}
