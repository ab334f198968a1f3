//! What the CLI prints, without the panics of `println!`/`eprintln!` on a closed or full
//! stream.

/// `eprintln!` that never panics: a line stderr cannot take (closed, or a full disk under a
/// redirect) is dropped. `eprintln!` panics there, and `mc-ledger hook` must exit 0 whatever
/// happens (seen under libfiu: tests/io_faults.rs).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// `println!` (`out!`) and `print!` (`out!(no_newline; …)`) that never panic: when stdout is
/// gone (`mc-ledger demo | head -1`) the command ends there, quietly, with 141 (what a shell
/// reports for a program ended by SIGPIPE), instead of a panic's backtrace; another failure
/// to write is one line on stderr and 1. Acknowledged writes made before it stay.
macro_rules! out {
    (no_newline; $($arg:tt)*) => {{
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        let written = write!(stdout, $($arg)*).and_then(|()| stdout.flush());
        $crate::output::stdout_failed(written);
    }};
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let written = writeln!(std::io::stdout().lock(), $($arg)*);
        $crate::output::stdout_failed(written);
    }};
}

/// A line on stdout that is only information (`mc-ledger run` says which runtime it started):
/// dropped when stdout cannot take it, so the command's own work (reaping, harvesting) goes on.
macro_rules! tell {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// Ends the process when writing to stdout failed (see `out!`).
pub(crate) fn stdout_failed(written: std::io::Result<()>) {
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(141),
        Err(e) => {
            say!("mc-ledger: cannot write to stdout: {e}");
            std::process::exit(1);
        }
    }
}
