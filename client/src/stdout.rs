//! What the binaries (`signer`, `signerctl`) print on standard output, written so that a reader
//! that goes away early (`signerctl key list | head -1`) ends the command quietly instead of
//! panicking like `println!` does.
//!
//! Owns: [`outln!`] (the drop-in replacement for `println!`) and what a failed write means.
//! Must not: print to stderr anything but the write failure itself, or buffer output (each
//! call is written, and flushed, before it returns).
//!
//! A closed pipe ends the process with exit code 0 and no message: whatever the command
//! decided (a signature made, an approval sent) stands, and the reader chose not to read the
//! rest. Any other write failure (a full disk behind `> file`) prints one line on stderr and
//! exits 1.

use std::io::{ErrorKind, Write};

/// Write `args` (and a newline when `newline`) to stdout; on failure end the process as the
/// module documentation says.
pub fn write(args: std::fmt::Arguments<'_>, newline: bool) {
    let mut out = std::io::stdout().lock();
    let result = out
        .write_fmt(args)
        .and_then(|()| {
            if newline {
                out.write_all(b"\n")
            } else {
                Ok(())
            }
        })
        .and_then(|()| out.flush());
    if let Err(e) = result {
        end_on(&e)
    }
}

/// How a failed write to stdout ends the process.
fn end_on(e: &std::io::Error) -> ! {
    if e.kind() == ErrorKind::BrokenPipe {
        std::process::exit(0)
    }
    eprintln!("error: writing to standard output: {e}");
    std::process::exit(1)
}

/// `println!` that survives a closed pipe (see [`crate::stdout`]).
#[macro_export]
macro_rules! outln {
    () => {
        $crate::stdout::write(format_args!(""), true)
    };
    ($($arg:tt)*) => {
        $crate::stdout::write(format_args!($($arg)*), true)
    };
}
