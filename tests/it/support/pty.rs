//! Runs a program on a real pseudo-terminal, as a person at a terminal would: its stdin, stdout
//! and stderr are the terminal, it is a session leader with the terminal as its controlling tty
//! (so Ctrl-C becomes SIGINT), and the test reads the screen and types keys.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// A program running on a pseudo-terminal.
pub struct Terminal {
    master: File,
    output: Receiver<Vec<u8>>,
    screen: String,
    child: Child,
}

impl Terminal {
    /// Starts `command` on a fresh pseudo-terminal of 100 columns.
    pub fn spawn(command: Command) -> Terminal {
        Terminal::spawn_with_width(command, 100)
    }

    /// Starts `command` on a fresh pseudo-terminal of `columns` columns.
    pub fn spawn_with_width(mut command: Command, columns: u16) -> Terminal {
        // The child sees a terminal, so it gets the variable that describes one: without TERM
        // (as under cron or a CI runner) programs rightly draw nothing fancy.
        command.env("TERM", "xterm");
        // No pager unless a test asks for one: a real `less` would wait for keys that the
        // test never types.
        if !command.get_envs().any(|(key, _)| key == "POP3_PAGER") {
            command.env("POP3_PAGER", "");
        }
        let (mut master_fd, mut slave_fd) = (0, 0);
        let size = libc::winsize {
            ws_row: 40,
            ws_col: columns,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty writes two new descriptors into the given integers.
        let rc = unsafe {
            libc::openpty(
                &mut master_fd,
                &mut slave_fd,
                std::ptr::null_mut(),
                std::ptr::null(),
                &size,
            )
        };
        assert_eq!(rc, 0, "openpty failed: {}", std::io::Error::last_os_error());
        // SAFETY: both descriptors were just opened and are owned here.
        let (master, slave) =
            unsafe { (File::from_raw_fd(master_fd), OwnedFd::from_raw_fd(slave_fd)) };
        let slave_raw = slave.as_raw_fd();
        command
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave));
        // SAFETY: setsid and ioctl are async-signal-safe and used as documented.
        unsafe {
            command.pre_exec(move || {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let _ = slave_raw;
                Ok(())
            });
        }
        let child = command.spawn().expect("spawn on pty");
        drop(command); // closes our copies of the slave side
        let mut reader = master.try_clone().unwrap();
        let (sender, output) = channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // EIO means the child side closed: the program ended.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 || sender.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Terminal {
            master,
            output,
            screen: String::new(),
            child,
        }
    }

    /// Waits until the screen shows `text` after what earlier calls consumed; returns what was
    /// shown up to and including it. Panics with the screen after 20 seconds.
    pub fn expect(&mut self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(at) = self.screen.find(text) {
                let end = at + text.len();
                let shown = self.screen[..end].to_owned();
                self.screen.drain(..end);
                return shown;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.output.recv_timeout(left) {
                Ok(bytes) => self.screen.push_str(&String::from_utf8_lossy(&bytes)),
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "timed out waiting for {text:?}; the screen shows:\n{}",
                        self.screen
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "the program ended before showing {text:?}; the screen shows:\n{}",
                        self.screen
                    )
                }
            }
        }
    }

    /// Waits (at most 5 seconds) until the program has turned terminal echo off, as a password
    /// prompt does right after printing its prompt: keys typed before that would be echoed.
    pub fn wait_for_echo_off(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            // SAFETY: a zeroed termios is valid storage for tcgetattr to fill.
            let mut termios: libc::termios = unsafe { std::mem::zeroed() };
            // SAFETY: tcgetattr on our master descriptor reports the terminal's settings.
            let ok = unsafe { libc::tcgetattr(self.master.as_raw_fd(), &mut termios) } == 0;
            if ok && termios.c_lflag & libc::ECHO == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "echo was never turned off; the screen shows:\n{}",
                self.screen
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Types `keys`.
    pub fn type_keys(&mut self, keys: &str) {
        self.master.write_all(keys.as_bytes()).unwrap();
        self.master.flush().unwrap();
    }

    /// Waits for the program to end (at most 20 seconds) and returns the rest of the screen.
    pub fn wait(mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                while let Ok(bytes) = self.output.recv_timeout(Duration::from_millis(200)) {
                    self.screen.push_str(&String::from_utf8_lossy(&bytes));
                }
                return (status, self.screen);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "the program did not end; the screen shows:\n{}",
                    self.screen
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
