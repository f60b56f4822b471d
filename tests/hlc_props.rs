#![cfg(not(target_arch = "wasm32"))]
//! Property tests of the hybrid logical clock (issue 3): local timestamps strictly
//! increase whatever the physical clock does; after receiving `m` every new
//! timestamp exceeds `m`; a refused timestamp leaves the clock identical; and
//! 200,000 events within one millisecond stay monotone (the counter carries into
//! the next millisecond instead of wrapping).

#[path = "common/cases.rs"]
mod cases;
use meterflow::core::hlc::{Hlc, HybridClock, MAX_COUNTER};
use proptest::prelude::*;

/// What happens to the clock next.
#[derive(Clone, Debug)]
enum Step {
    /// A local or send event at this physical time.
    Local(u64),
    /// A remote timestamp received at this physical time.
    Receive { remote: Hlc, pt: u64 },
}

fn hlc() -> impl Strategy<Value = Hlc> {
    (0u64..2_000, 0u32..=MAX_COUNTER).prop_map(|(wall_ms, counter)| Hlc { wall_ms, counter })
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u64..2_000).prop_map(Step::Local),
        (hlc(), 0u64..2_000).prop_map(|(remote, pt)| Step::Receive { remote, pt }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases::cases_or(512)))]

    /// Whatever the physical clock does (stalls, steps back, jumps) and whatever
    /// arrives, each accepted event's timestamp exceeds every earlier one and the
    /// received one; refused arrivals change nothing.
    #[test]
    fn monotone_and_exceeds_received(steps in prop::collection::vec(step(), 1..300), max_offset in 0u64..700) {
        let mut c = HybridClock::default();
        let mut last: Option<Hlc> = None;
        for s in steps {
            match s {
                Step::Local(pt) => {
                    let t = c.now(pt);
                    prop_assert!(last.is_none_or(|l| t > l), "{t:?} after {last:?}");
                    prop_assert!(t.wall_ms >= pt, "logical time {t:?} behind physical {pt}");
                    last = Some(t);
                }
                Step::Receive { remote, pt } => {
                    let before = c;
                    match c.receive(remote, pt, max_offset) {
                        Ok(t) => {
                            prop_assert!(t > remote, "{t:?} not after received {remote:?}");
                            prop_assert!(last.is_none_or(|l| t > l));
                            prop_assert!(remote.wall_ms <= pt + max_offset);
                            let next = c.now(pt);
                            prop_assert!(next > remote && next > t);
                            last = Some(next);
                        }
                        Err(r) => {
                            prop_assert!(remote.wall_ms > pt + max_offset);
                            prop_assert_eq!(r.remote, remote);
                            prop_assert_eq!(c, before, "a refused timestamp changed the clock");
                        }
                    }
                }
            }
        }
    }

    /// The packed and string forms order exactly as the timestamps do.
    #[test]
    fn encodings_preserve_order(a in hlc(), b in hlc()) {
        prop_assert_eq!(a.cmp(&b), a.packed().cmp(&b.packed()));
        prop_assert_eq!(a.cmp(&b), a.sortable().cmp(&b.sortable()));
    }
}

#[test]
fn two_hundred_thousand_events_in_one_millisecond_stay_monotone() {
    let mut c = HybridClock::default();
    let mut last = c.now(1_000);
    for _ in 0..200_000 {
        let t = c.now(1_000);
        assert!(t > last, "{t:?} after {last:?}");
        assert!(t.counter <= MAX_COUNTER);
        last = t;
    }
    // 200,000 events overflow a 16-bit counter three times: wall time advanced.
    assert_eq!(last.wall_ms, 1_003);
    // Once physical time passes the logical time the counter starts over.
    assert_eq!(c.now(5_000), Hlc { wall_ms: 5_000, counter: 0 });
}

#[test]
fn receiving_at_the_counter_limit_carries_instead_of_wrapping() {
    let mut c = HybridClock::default();
    let m = Hlc { wall_ms: 7, counter: MAX_COUNTER };
    let t = c.receive(m, 7, 0).unwrap();
    assert_eq!(t, Hlc { wall_ms: 8, counter: 0 });
    assert!(c.receive(m, 7, 0).unwrap() > t);
}
