//! Pausing a server process: SIGSTOP now, SIGCONT when the guard drops.

use super::*;

/// Sends SIGCONT to a SIGSTOPped process when dropped (also on a panic).
pub struct Stopped(u32);

impl Stopped {
    /// SIGSTOPs `pid`.
    pub fn stop(pid: u32) -> Self {
        signal("-STOP", pid);
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        signal("-CONT", self.0);
    }
}

fn signal(which: &str, pid: u32) {
    let status = Command::new("kill")
        .args([which, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {which} {pid}");
}
