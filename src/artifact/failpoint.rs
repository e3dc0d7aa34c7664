//! Named failpoints for the crash-consistency tests (docs/artifacts.md §9): one point per
//! staging step (`E1`–`E8`, `S1`, `I1`–`I12`; `I11` and `I12` are finalize's sub-steps
//! around `I10`, numbered after the original points to keep those names). Without the
//! `failpoints` feature every point is an inlined `Ok(())`; with it, a point may return an
//! injected error or abort the process. Adds no public item.
//!
//! Arming, with the feature:
//! - the environment variable `KVFOLD_FAILPOINT=<name>=<action>[;<name>=<action>…]`,
//!   read at every hit, with action `abort` (`std::process::abort()`: no destructors
//!   run, as in a real crash) or `error` (an injected `io::Error`); crash tests set it
//!   on a child process that re-executes the test binary;
//! - in unit tests, `arm(name, Action::Error)` on the current thread (staging runs on
//!   the caller's thread, so parallel tests do not see each other's points), or
//!   `arm_hook(name, f)`, which runs `f` once when the point is hit (a test plays a
//!   racing process there).

/// Export: before the destination check.
pub(crate) const E1: &str = "E1";
/// Export: before the stage directory is created.
pub(crate) const E2: &str = "E2";
/// Export: stage created, before the backend writes the payload.
pub(crate) const E3: &str = "E3";
/// Export: payload written, before it is hashed and fsynced.
pub(crate) const E4: &str = "E4";
/// Export: payload hashed and fsynced, before the manifest is written.
pub(crate) const E5: &str = "E5";
/// Export: stage complete (manifest renamed, stage fsynced), before the re-check.
pub(crate) const E6: &str = "E6";
/// Export: re-check passed, before the stage is renamed onto the destination.
pub(crate) const E7: &str = "E7";
/// Export: published, before the destination's parent is fsynced.
pub(crate) const E8: &str = "E8";
/// Scope stamping: new manifest renamed into place, before the artifact dir is fsynced.
pub(crate) const S1: &str = "S1";
/// Import: before the manifest is read.
pub(crate) const I1: &str = "I1";
/// Import: manifest decoded, before the backend check.
pub(crate) const I2: &str = "I2";
/// Import: before the backend-version policy.
pub(crate) const I3: &str = "I3";
/// Import: before the destination (and payload shape) check.
pub(crate) const I4: &str = "I4";
/// Import: before the payload listing check.
pub(crate) const I5: &str = "I5";
/// Import: before the stage directory is created.
pub(crate) const I6: &str = "I6";
/// Import: stage created, before the payload is copied.
pub(crate) const I7: &str = "I7";
/// Import: payload copied and verified, before the staged directories are fsynced.
pub(crate) const I8: &str = "I8";
/// Import: stage complete, before the backend's cursor gate opens it.
pub(crate) const I9: &str = "I9";
/// Import: destination re-checked, before the staged payload is published onto it
/// (hit before `I10`).
pub(crate) const I11: &str = "I11";
/// Import: staged payload published (file: linked, directory: renamed) onto the
/// destination, before its parent is fsynced.
pub(crate) const I10: &str = "I10";
/// Import, single file: published and the parent fsynced, before the staged name
/// (a second link to the installed file) is removed (hit after `I10`).
pub(crate) const I12: &str = "I12";

#[cfg(feature = "failpoints")]
pub(crate) use enabled::hit;
#[cfg(all(feature = "failpoints", test))]
pub(crate) use enabled::{Action, arm, arm_hook, disarm_all};

/// Without the feature: every point passes.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub(crate) fn hit(_name: &'static str) -> std::io::Result<()> {
    Ok(())
}

#[cfg(feature = "failpoints")]
mod enabled {
    use std::io;

    #[cfg(test)]
    use std::cell::RefCell;

    /// Environment variable arming points in a (child) process.
    const ENV_VAR: &str = "KVFOLD_FAILPOINT";

    /// What an armed point does.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Action {
        /// Return an injected `io::Error` from the point.
        Error,
        /// `std::process::abort()`: a crash without unwinding or destructors.
        Abort,
    }

    /// A one-shot callback armed at a point by `arm_hook`.
    #[cfg(test)]
    type Hook = Box<dyn FnOnce()>;

    #[cfg(test)]
    thread_local! {
        /// Points armed on this thread by `arm`.
        static ARMED: RefCell<Vec<(&'static str, Action)>> = const { RefCell::new(Vec::new()) };
        /// Callbacks armed on this thread by `arm_hook`.
        static HOOKS: RefCell<Vec<(&'static str, Hook)>> = const { RefCell::new(Vec::new()) };
    }

    /// Runs `hook` once, the first time `name` is hit on the current thread (before
    /// any action armed there). Disarmed by `disarm_all` if never hit.
    #[cfg(test)]
    pub(crate) fn arm_hook(name: &'static str, hook: impl FnOnce() + 'static) {
        HOOKS.with(|hooks| hooks.borrow_mut().push((name, Box::new(hook))));
    }

    /// Takes the hook armed for `name` on this thread, if any.
    #[cfg(test)]
    fn take_hook(name: &str) -> Option<Hook> {
        HOOKS.with(|hooks| {
            let mut hooks = hooks.borrow_mut();
            let at = hooks
                .iter()
                .position(|(armed_name, _)| *armed_name == name)?;
            Some(hooks.remove(at).1)
        })
    }

    /// Arms `name` on the current thread until `disarm_all`.
    #[cfg(test)]
    pub(crate) fn arm(name: &'static str, action: Action) {
        ARMED.with(|armed| armed.borrow_mut().push((name, action)));
    }

    /// Disarms every point and hook armed on the current thread.
    #[cfg(test)]
    pub(crate) fn disarm_all() {
        ARMED.with(|armed| armed.borrow_mut().clear());
        HOOKS.with(|hooks| hooks.borrow_mut().clear());
    }

    /// The action armed for `name` on this thread, if any.
    #[cfg(test)]
    fn thread_action(name: &str) -> Option<Action> {
        ARMED.with(|armed| {
            armed
                .borrow()
                .iter()
                .find(|(armed_name, _)| *armed_name == name)
                .map(|(_, action)| *action)
        })
    }

    #[cfg(not(test))]
    fn thread_action(_name: &str) -> Option<Action> {
        None
    }

    /// The action `KVFOLD_FAILPOINT` arms for `name`, if any.
    fn env_action(name: &str) -> Option<Action> {
        let spec = std::env::var(ENV_VAR).ok()?;
        spec.split(';').find_map(|entry| {
            let (point, action) = entry.trim().split_once('=')?;
            if point != name {
                return None;
            }
            match action {
                "abort" => Some(Action::Abort),
                "error" => Some(Action::Error),
                _ => None,
            }
        })
    }

    /// Passes, fails or aborts, as armed for `name` (after running its hook, if any).
    pub(crate) fn hit(name: &'static str) -> io::Result<()> {
        #[cfg(test)]
        if let Some(hook) = take_hook(name) {
            hook();
        }
        match thread_action(name).or_else(|| env_action(name)) {
            None => Ok(()),
            Some(Action::Error) => Err(io::Error::other(format!(
                "failpoint {name}: injected error"
            ))),
            Some(Action::Abort) => std::process::abort(),
        }
    }
}
