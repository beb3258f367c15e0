//! Names the host's `/etc/hosts` maps: the system resolver answers them from the file, so no
//! query reaches the gate and nothing can be learned. A listed name found there is allowed at
//! the file's addresses from the start, as the file is as trusted as the profile.

use std::net::IpAddr;

/// The addresses `/etc/hosts` text gives `name` (compared without case).
pub fn addresses(hosts: &str, name: &str) -> Vec<IpAddr> {
    hosts
        .lines()
        .filter_map(|line| {
            let line = line.split('#').next()?;
            let mut words = line.split_whitespace();
            let addr: IpAddr = words.next()?.split('%').next()?.parse().ok()?;
            words.any(|w| w.eq_ignore_ascii_case(name)).then_some(addr)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases_map_to_their_lines_addresses() {
        let hosts = "127.0.0.1 localhost\n::1 localhost ip6-localhost # v6\n# 10.0.0.1 localhost\n10.0.0.5 build.internal build\n";
        assert_eq!(
            addresses(hosts, "LOCALHOST"),
            [
                "127.0.0.1".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ]
        );
        assert_eq!(
            addresses(hosts, "build"),
            ["10.0.0.5".parse::<IpAddr>().unwrap()]
        );
        assert!(addresses(hosts, "api.test").is_empty());
    }
}
