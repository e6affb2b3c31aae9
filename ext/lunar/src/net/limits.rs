//! Process limits that decide how many connections one Lunar can hold.

/// Raises the soft open-file limit to the hard limit (each held connection is a
/// descriptor). Returns (soft before, soft after).
#[allow(clippy::unnecessary_cast)] // `rlim_t` is u64 on Linux, not on every Unix
pub fn raise_open_files() -> (u64, u64) {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return (0, 0);
        }
        let before = lim.rlim_cur;
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return (before as u64, lim.rlim_max as u64);
            }
        }
        (before as u64, before as u64)
    }
}

/// The default connection cap: the open-file limit less room for everything else the
/// process opens (files, Ruby, EventMachine, the listeners).
pub fn default_max_connections(open_files: u64) -> usize {
    open_files.saturating_sub(100).max(16) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_cap_leaves_room() {
        assert_eq!(default_max_connections(20_000), 19_900);
        assert_eq!(default_max_connections(50), 16);
    }
}
