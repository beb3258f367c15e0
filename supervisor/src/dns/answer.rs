//! What a resolver's answer says about a permitted name: the addresses at the end of its CNAME
//! chain and how long each may be trusted.

use std::net::IpAddr;

use hickory_proto::op::Message;
use hickory_proto::rr::RData;

use super::names::normalize;

/// Longest CNAME chain followed; longer chains are a loop or an attack, and their addresses
/// are not learned.
const MAX_CHAIN: usize = 16;

/// The addresses an answer gives for one name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    /// Each address with the smallest TTL on the way to it (the CNAMEs' included), seconds.
    pub addrs: Vec<(IpAddr, u32)>,
    /// The names of the chain after the first (CNAME targets), in order.
    pub aliases: Vec<String>,
}

/// The A and AAAA records that answer `qname` in `response`, following CNAMEs from `qname`
/// only: a record for any other owner name (which a resolver could slip in) is ignored.
pub fn resolved(response: &Message, qname: &str) -> Resolved {
    let mut out = Resolved::default();
    let mut current = normalize(qname);
    let mut chain_ttl = u32::MAX;
    for _ in 0..MAX_CHAIN {
        let mut next = None;
        for record in &response.answers {
            if normalize(&record.name.to_ascii()) != current {
                continue;
            }
            let ttl = record.ttl.min(chain_ttl);
            match &record.data {
                RData::A(a) => out.addrs.push((IpAddr::V4(a.0), ttl)),
                RData::AAAA(a) => out.addrs.push((IpAddr::V6(a.0), ttl)),
                RData::CNAME(target) if next.is_none() => {
                    next = Some((normalize(&target.0.to_ascii()), record.ttl));
                }
                _ => {}
            }
        }
        match next {
            Some((target, ttl)) if out.addrs.is_empty() => {
                chain_ttl = chain_ttl.min(ttl);
                out.aliases.push(target.clone());
                current = target;
            }
            _ => return out,
        }
    }
    // The chain did not end: nothing learned from it.
    out.addrs.clear();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{MessageType, OpCode};
    use hickory_proto::rr::rdata::{A, CNAME};
    use hickory_proto::rr::{Name, Record};
    use std::str::FromStr;

    fn response(records: Vec<Record>) -> Message {
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.add_answers(records);
        m
    }

    fn a(name: &str, ttl: u32, ip: [u8; 4]) -> Record {
        Record::from_rdata(
            Name::from_str(name).unwrap(),
            ttl,
            RData::A(A::from(std::net::Ipv4Addr::from(ip))),
        )
    }

    fn cname(name: &str, ttl: u32, target: &str) -> Record {
        Record::from_rdata(
            Name::from_str(name).unwrap(),
            ttl,
            RData::CNAME(CNAME(Name::from_str(target).unwrap())),
        )
    }

    #[test]
    fn addresses_of_the_name_itself() {
        let r = resolved(
            &response(vec![a("api.test.", 30, [10, 0, 0, 1])]),
            "API.test",
        );
        assert_eq!(r.addrs, [("10.0.0.1".parse().unwrap(), 30)]);
    }

    #[test]
    fn a_cname_chain_is_followed_and_its_shortest_ttl_counts() {
        let r = resolved(
            &response(vec![
                cname("api.test.", 5, "edge.cdn.test."),
                a("edge.cdn.test.", 60, [10, 0, 0, 2]),
            ]),
            "api.test",
        );
        assert_eq!(r.addrs, [("10.0.0.2".parse().unwrap(), 5)]);
        assert_eq!(r.aliases, ["edge.cdn.test"]);
    }

    #[test]
    fn records_for_other_names_are_not_learned() {
        let r = resolved(
            &response(vec![
                a("api.test.", 30, [10, 0, 0, 1]),
                a("other.test.", 30, [10, 0, 0, 9]),
            ]),
            "api.test",
        );
        assert_eq!(r.addrs.len(), 1);
    }

    #[test]
    fn a_cname_loop_learns_nothing() {
        let r = resolved(
            &response(vec![
                cname("a.test.", 5, "b.test."),
                cname("b.test.", 5, "a.test."),
            ]),
            "a.test",
        );
        assert!(r.addrs.is_empty());
    }
}
