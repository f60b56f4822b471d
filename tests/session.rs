#![cfg(not(target_arch = "wasm32"))]
//! Stream v2 session state machine: every transition against a scripted server
//! and a manual clock (docs/STREAM.md).

#[path = "common/rng.rs"]
mod rng;

use meterflow::core::session::{
    ChannelPos, ClientOp, ConnectionState, Delivery, FetchWhat, Payload, ServerOp, Session,
    SessionConfig, SessionErrorCode, SessionInput as In, SessionOutput as Out, SnapshotReply,
    MAX_LISTED_REFUSALS,
};

/// A session, a manual clock and the outputs of the last input.
struct H {
    s: Session,
    now: f64,
}

impl H {
    fn new(cfg: SessionConfig) -> H {
        H { s: Session::new(cfg).expect("valid config"), now: 0.0 }
    }
    fn at(&mut self, t: f64, input: In) -> Vec<Out> {
        self.now = t;
        self.s.handle(input, t)
    }
    fn tick(&mut self, t: f64) -> Vec<Out> {
        self.at(t, In::Tick)
    }
    fn server(&mut self, op: ServerOp) -> Vec<Out> {
        self.at(self.now, In::Server(op))
    }
    /// Start, HELLO (interval `hb`), READY "s1": the session is ready at `now`.
    fn ready(&mut self, hb: f64) -> Vec<Out> {
        let mut all = self.at(self.now, In::Start);
        all.extend(self.server(hello(hb)));
        all.extend(self.server(ServerOp::Ready { session_id: "s1".into() }));
        all
    }
    fn delta(&mut self, ch: &str, epoch: u64, seq: u64) -> Vec<Out> {
        let op =
            ServerOp::Delta { channel: ch.into(), epoch, seq, body: body(seq), wire_bytes: 64 };
        self.server(op)
    }
    fn reply(&mut self, id: u64, ch: &str, epoch: u64, seq: u64, since: Option<u64>) -> Vec<Out> {
        let r = SnapshotReply {
            request_id: id,
            channel: ch.into(),
            epoch,
            snapshot_seq: seq,
            since_seq: since,
            body: Payload::Text(format!("snap {seq}")),
        };
        self.at(self.now, In::Snapshot(r))
    }
}

fn hello(hb: f64) -> ServerOp {
    ServerOp::Hello {
        heartbeat_interval_ms: hb,
        session_id: "s1".into(),
        server_time_ms: 0.0,
        resume_url: None,
    }
}

fn body(seq: u64) -> Payload {
    Payload::Binary(seq.to_le_bytes().to_vec())
}

fn cfg() -> SessionConfig {
    SessionConfig { credit_window: 8, ..SessionConfig::default() }
}

fn sends(out: &[Out]) -> Vec<&ClientOp> {
    out.iter().filter_map(|o| if let Out::Send(op) = o { Some(op) } else { None }).collect()
}

fn fetches(out: &[Out]) -> Vec<(u64, FetchWhat)> {
    out.iter()
        .filter_map(|o| match o {
            Out::Fetch { request_id, what } => Some((*request_id, what.clone())),
            _ => None,
        })
        .collect()
}

fn delivered(out: &[Out]) -> Vec<(String, String)> {
    out.iter()
        .filter_map(|o| match o {
            Out::Deliver { channel, item: Delivery::Delta { epoch, seq, .. } } => {
                Some((channel.clone(), format!("d{epoch}/{seq}")))
            }
            Out::Deliver {
                channel,
                item: Delivery::Snapshot { epoch, snapshot_seq, since_seq, .. },
            } => {
                let kind = if since_seq.is_some() { "m" } else { "s" };
                Some((channel.clone(), format!("{kind}{epoch}/{snapshot_seq}")))
            }
            _ => None,
        })
        .collect()
}

fn errors(out: &[Out]) -> Vec<SessionErrorCode> {
    out.iter().filter_map(|o| if let Out::Error(e) = o { Some(e.code) } else { None }).collect()
}

fn closes(out: &[Out]) -> Vec<u16> {
    out.iter()
        .filter_map(|o| if let Out::Close { code, .. } = o { Some(*code) } else { None })
        .collect()
}

fn connects(out: &[Out]) -> usize {
    out.iter().filter(|o| matches!(o, Out::Connect { .. })).count()
}

fn retry_at(out: &[Out]) -> Option<f64> {
    out.iter().rev().find_map(|o| match o {
        Out::Connection(s) => s.next_retry_ms,
        _ => None,
    })
}

/// Subscribes `ch` and answers its snapshot at `(epoch, seq)`: the channel is live.
fn live(h: &mut H, ch: &str, epoch: u64, seq: u64) {
    let out = h.at(h.now, In::Subscribe { channel: ch.into() });
    let (id, _) = fetches(&out)[0].clone();
    h.reply(id, ch, epoch, seq, None);
}

#[test]
fn identify_then_ready() {
    let mut h = H::new(cfg());
    assert_eq!(h.s.state(), ConnectionState::Disconnected);
    let out = h.at(0.0, In::Start);
    assert_eq!(connects(&out), 1);
    assert_eq!(h.s.state(), ConnectionState::Connecting);
    let out = h.server(hello(1000.0));
    assert!(matches!(sends(&out)[..], [ClientOp::Identify { .. }]));
    assert_eq!(h.s.state(), ConnectionState::Identifying);
    let out = h.server(ServerOp::Ready { session_id: "s1".into() });
    assert_eq!(h.s.state(), ConnectionState::Ready);
    assert!(out
        .iter()
        .any(|o| matches!(o, Out::Connection(s) if s.state == ConnectionState::Ready)));
    assert_eq!(h.s.session_id(), Some("s1"));
}

#[test]
fn ops_out_of_state_are_refused_and_ignored() {
    let mut h = H::new(cfg());
    let out = h.server(ServerOp::Ready { session_id: "x".into() });
    assert_eq!(errors(&out), [SessionErrorCode::UnexpectedOp]);
    h.at(0.0, In::Start);
    let out = h.delta("totals", 1, 1);
    assert_eq!(errors(&out), [SessionErrorCode::UnexpectedOp]);
    let out = h.server(hello(f64::NAN));
    assert_eq!(errors(&out), [SessionErrorCode::UnexpectedOp]);
    assert_eq!(closes(&out), [4000]);
    assert_eq!(h.s.state(), ConnectionState::Disconnected);
}

#[test]
fn first_heartbeat_is_jittered_within_the_interval_and_deterministic_per_seed() {
    let mut firsts = Vec::new();
    for seed in 0..200 {
        let run = |seed| {
            let mut h = H::new(SessionConfig { seed, ..cfg() });
            h.now = 10_000.0;
            h.ready(1000.0);
            h.s.next_deadline().expect("heartbeat scheduled")
        };
        let first = run(seed);
        assert_eq!(first.to_bits(), run(seed).to_bits(), "seed {seed} not deterministic");
        assert!((10_000.0..11_000.0).contains(&first), "seed {seed}: {first}");
        firsts.push(first - 10_000.0);
        // Nothing before it, a HEARTBEAT at it.
        let mut h = H::new(SessionConfig { seed, ..cfg() });
        h.now = 10_000.0;
        h.ready(1000.0);
        if first > 10_000.0 {
            assert!(sends(&h.tick(first - 1e-6)).is_empty());
        }
        assert!(matches!(sends(&h.tick(first))[..], [ClientOp::Heartbeat { .. }]));
    }
    let (lo, hi) = firsts.iter().fold((f64::MAX, 0f64), |(a, b), &x| (a.min(x), b.max(x)));
    assert!(lo < 100.0 && hi > 900.0, "jitter spread {lo}..{hi}");
}

#[test]
fn heartbeats_every_interval_carry_the_last_seq() {
    let mut h = H::new(cfg());
    h.ready(1000.0);
    live(&mut h, "totals", 3, 41);
    let t0 = h.s.next_deadline().unwrap();
    let out = h.tick(t0);
    let want = ChannelPos { channel: "totals".into(), epoch: 3, seq: 41 };
    assert_eq!(sends(&out), [&ClientOp::Heartbeat { seqs: vec![want] }]);
    h.server(ServerOp::HeartbeatAck { sent: vec![] });
    assert!(sends(&h.tick(t0 + 999.0)).is_empty());
    assert_eq!(sends(&h.tick(t0 + 1000.0)).len(), 1);
    // The server may ask for one at any time.
    h.server(ServerOp::HeartbeatAck { sent: vec![] });
    assert_eq!(sends(&h.server(ServerOp::Heartbeat)).len(), 1);
}

#[test]
fn a_missed_ack_is_a_zombie_closed_with_4000_then_resumed() {
    let mut h = H::new(cfg());
    h.ready(1000.0);
    live(&mut h, "totals", 3, 41);
    let t0 = h.s.next_deadline().unwrap();
    h.tick(t0); // heartbeat, never acknowledged
    let out = h.tick(t0 + 1000.0);
    assert_eq!(closes(&out), [4000]);
    assert_eq!(h.s.state(), ConnectionState::Disconnected);
    assert_eq!(h.s.counters().zombies, 1);
    // The socket's close event after our close is an echo.
    assert!(h.at(h.now, In::Closed { code: 4000, reason: String::new() }).is_empty());
    let retry = h.s.next_deadline().unwrap();
    assert_eq!(connects(&h.tick(retry)), 1);
    let out = h.server(hello(1000.0));
    let ClientOp::Resume { session_id, channels, .. } = sends(&out)[0] else { panic!("{out:?}") };
    assert_eq!(session_id, "s1");
    assert_eq!(channels[0].position, Some((3, 41)));
    assert_eq!(h.s.state(), ConnectionState::Resuming);
    h.server(ServerOp::Resumed);
    assert_eq!(h.s.state(), ConnectionState::Ready);
    assert_eq!(h.s.counters().resumes_ok, 1);
}

#[test]
fn reconnect_and_resumable_invalid_session_resume() {
    for op in [ServerOp::Reconnect, ServerOp::InvalidSession { resumable: true }] {
        let mut h = H::new(cfg());
        h.ready(1000.0);
        let out = h.server(op.clone());
        assert_eq!(closes(&out), [4000], "{op:?}");
        h.tick(h.s.next_deadline().unwrap());
        let out = h.server(hello(1000.0));
        assert!(matches!(sends(&out)[..], [ClientOp::Resume { .. }]), "{op:?}");
    }
}

#[test]
fn non_resumable_invalid_session_waits_1_to_5_s_then_identifies_afresh() {
    let mut waits = Vec::new();
    for seed in 0..100 {
        let mut h = H::new(SessionConfig { seed, ..cfg() });
        h.ready(60_000.0);
        live(&mut h, "totals", 3, 41);
        // Past the first heartbeat (acknowledged), the next is a minute away.
        let t = h.s.next_deadline().unwrap();
        h.tick(t);
        h.server(ServerOp::HeartbeatAck { sent: vec![] });
        h.now = t + 100.0;
        // Deltas are buffered while the channel bootstraps again.
        let out = h.server(ServerOp::InvalidSession { resumable: false });
        assert!(closes(&out).is_empty());
        assert!(matches!(fetches(&out)[..], [(_, FetchWhat::Snapshot { .. })]));
        assert_eq!(h.s.session_id(), None);
        let at = h.s.next_deadline().unwrap();
        let wait = at - h.now;
        assert!((1000.0..=5000.0).contains(&wait), "seed {seed}: identify after {wait}");
        waits.push(wait);
        assert!(sends(&h.tick(at - 1.0)).is_empty());
        let out = h.tick(at);
        assert!(matches!(sends(&out)[..], [ClientOp::Identify { .. }]), "{out:?}");
        assert_eq!(h.s.state(), ConnectionState::Identifying);
    }
    let (lo, hi) = waits.iter().fold((f64::MAX, 0f64), |(a, b), &x| (a.min(x), b.max(x)));
    assert!(lo < 1500.0 && hi > 4500.0, "{lo}..{hi}");
}

#[test]
fn a_failed_resume_counts_and_identifies() {
    let mut h = H::new(cfg());
    h.ready(1000.0);
    h.server(ServerOp::Reconnect);
    h.tick(h.s.next_deadline().unwrap());
    h.server(hello(1000.0));
    h.server(ServerOp::InvalidSession { resumable: false });
    assert_eq!(h.s.counters().resumes_failed, 1);
    let out = h.tick(h.now + 5000.0);
    assert!(matches!(sends(&out)[..], [ClientOp::Identify { .. }, ..]), "{out:?}");
}

#[test]
fn backoff_is_full_jitter_exponential_and_capped() {
    let c = SessionConfig { backoff_base_ms: 500.0, backoff_cap_ms: 30_000.0, ..cfg() };
    let mut maxima = vec![0f64; 12];
    for seed in 0..50 {
        let mut h = H::new(SessionConfig { seed, ..c.clone() });
        h.at(0.0, In::Start);
        for (n, max) in maxima.iter_mut().enumerate() {
            let out = h.at(h.now, In::Closed { code: 1006, reason: String::new() });
            let at = retry_at(&out).expect("retry scheduled");
            let ceiling = (500.0 * 2f64.powi(n as i32)).min(30_000.0);
            let delay = at - h.now;
            assert!((0.0..ceiling).contains(&delay), "seed {seed} attempt {n}: {delay}");
            *max = max.max(delay);
            assert_eq!(connects(&h.tick(at)), 1);
        }
        assert_eq!(h.s.counters().reconnect_attempts, 12);
    }
    assert!(maxima[0] > 250.0 && maxima[11] > 15_000.0, "{maxima:?}");
    // READY resets the attempt counter.
    let mut h = H::new(c);
    h.at(0.0, In::Start);
    for _ in 0..5 {
        h.at(h.now, In::Closed { code: 1006, reason: String::new() });
        h.tick(h.s.next_deadline().unwrap());
    }
    h.server(hello(1000.0));
    let out = h.server(ServerOp::Ready { session_id: "s".into() });
    assert!(out.iter().any(|o| matches!(o, Out::Connection(s) if s.attempt == 0)));
}

#[test]
fn no_hello_in_time_closes_and_retries() {
    let mut h = H::new(SessionConfig { hello_timeout_ms: 2000.0, ..cfg() });
    h.at(0.0, In::Start);
    assert!(closes(&h.tick(1999.0)).is_empty());
    assert_eq!(closes(&h.tick(2000.0)), [4000]);
    assert_eq!(h.s.state(), ConnectionState::Disconnected);
}

#[test]
fn fatal_close_codes_stop_and_say_why() {
    for code in [4004u16, 4010, 4012, 4013, 4014] {
        let mut h = H::new(cfg());
        h.ready(1000.0);
        let out = h.at(5.0, In::Closed { code, reason: "nope".into() });
        assert_eq!(errors(&out), [SessionErrorCode::FatalClose]);
        let Some(Out::Connection(s)) = out.iter().find(|o| matches!(o, Out::Connection(_))) else {
            panic!("no status")
        };
        assert_eq!(
            (s.state, s.last_close_code, s.next_retry_ms),
            (ConnectionState::Stopped, Some(code), None)
        );
        assert!(s.reason.contains("nope"));
        assert_eq!(h.s.next_deadline(), None, "code {code}");
        assert_eq!(connects(&h.tick(1e9)), 0);
    }
    // Non-fatal codes reconnect: 4000 resumes, 4007 identifies afresh.
    for (code, resume) in
        [(1001u16, true), (4000, true), (4008, true), (4007, false), (4009, false)]
    {
        let mut h = H::new(cfg());
        h.ready(1000.0);
        h.at(5.0, In::Closed { code, reason: String::new() });
        assert_eq!(h.s.state(), ConnectionState::Disconnected);
        h.tick(h.s.next_deadline().unwrap());
        let out = h.server(hello(1000.0));
        assert_eq!(matches!(sends(&out)[..], [ClientOp::Resume { .. }]), resume, "code {code}");
    }
}

#[test]
fn stop_closes_with_1000_and_forgets_the_session() {
    let mut h = H::new(cfg());
    h.ready(1000.0);
    assert_eq!(closes(&h.at(1.0, In::Stop)), [1000]);
    assert_eq!(h.s.next_deadline(), None);
    h.at(2.0, In::Start);
    assert!(matches!(sends(&h.server(hello(1000.0)))[..], [ClientOp::Identify { .. }]));
}

#[test]
fn credit_is_counted_refused_past_the_grant_and_replenished_by_renders() {
    let mut h = H::new(SessionConfig { credit_window: 4, ..cfg() });
    h.at(0.0, In::Start);
    live(&mut h, "totals", 1, 0);
    let out = h.server(hello(1000.0));
    let ClientOp::Identify { channels, .. } = sends(&out)[0] else { panic!() };
    assert_eq!(channels[0].credit, 4);
    h.server(ServerOp::Ready { session_id: "s".into() });
    for seq in 1..=4 {
        assert_eq!(delivered(&h.delta("totals", 1, seq)).len(), 1);
    }
    assert_eq!(h.s.counters().credit_exhausted, 1);
    let out = h.delta("totals", 1, 5);
    assert_eq!(errors(&out), [SessionErrorCode::CreditOverrun]);
    assert!(delivered(&out).is_empty());
    assert_eq!(h.s.counters().credit_overruns, 1);
    // A slow page grants nothing; one render frees one (threshold max(1, 4/4)).
    let out = h.at(1.0, In::Rendered { channel: "totals".into(), frames: 1 });
    assert_eq!(sends(&out), [&ClientOp::Credit { grants: vec![("totals".into(), 1)] }]);
    // The refused delta 5 is a gap now: 6 pauses the channel.
    let out = h.delta("totals", 1, 6);
    assert!(matches!(fetches(&out)[..], [(_, FetchWhat::MiniSnapshot { since_seq: 4, .. })]));
    // Renders past what was delivered are clamped.
    h.at(2.0, In::Rendered { channel: "totals".into(), frames: 100 });
    let v = &h.s.channels()[0];
    assert_eq!(v.credit + v.outstanding + v.pending + v.buffered as u32, 4);
    assert!(v.accepted <= v.granted);
}

#[test]
fn reconnect_offers_the_window_minus_what_the_page_still_holds() {
    let mut h = H::new(SessionConfig { credit_window: 10, ..cfg() });
    h.ready(1000.0);
    live(&mut h, "totals", 1, 0);
    for seq in 1..=3 {
        h.delta("totals", 1, seq);
    }
    h.server(ServerOp::Reconnect);
    h.tick(h.s.next_deadline().unwrap());
    let out = h.server(hello(1000.0));
    let ClientOp::Resume { channels, .. } = sends(&out)[0] else { panic!() };
    assert_eq!((channels[0].credit, channels[0].position), (7, Some((1, 3))));
}

#[test]
fn bootstrap_drops_deltas_the_snapshot_covers_and_applies_the_rest() {
    let mut h = H::new(cfg());
    h.ready(1000.0);
    let out = h.at(1.0, In::Subscribe { channel: "totals".into() });
    let [(id, FetchWhat::Snapshot { .. })] = fetches(&out)[..] else { panic!("{out:?}") };
    for seq in [2, 5, 3, 4, 4, 1] {
        assert!(h.delta("totals", 7, seq).is_empty());
    }
    assert_eq!(h.s.queue_depth(), 6);
    let out = h.reply(id, "totals", 7, 3, None);
    let got: Vec<_> = delivered(&out).into_iter().map(|(_, d)| d).collect();
    assert_eq!(got, ["s7/3", "d7/4", "d7/5"]);
    assert_eq!(h.s.queue_depth(), 0);
}

#[test]
fn a_snapshot_not_followed_by_seq_plus_one_is_fetched_again() {
    let mut h = H::new(cfg());
    h.ready(1000.0);
    let out = h.at(1.0, In::Subscribe { channel: "totals".into() });
    let (id, _) = fetches(&out)[0].clone();
    h.delta("totals", 7, 6);
    let out = h.reply(id, "totals", 7, 4, None);
    assert!(matches!(fetches(&out)[..], [(_, FetchWhat::Snapshot { .. })]));
    let (id2, _) = fetches(&out)[0].clone();
    let out = h.reply(id2, "totals", 7, 6, None);
    assert_eq!(delivered(&out), [("totals".into(), "s7/6".into())]);
    assert_eq!(h.s.counters().snapshot_fetches, 2);
}

#[test]
fn a_gap_pauses_only_its_channel_and_fetches_a_mini_snapshot() {
    let mut h = H::new(cfg());
    h.ready(1000.0);
    live(&mut h, "totals", 1, 5);
    live(&mut h, "meters.north", 2, 10);
    let out = h.delta("totals", 1, 7);
    let [(id, FetchWhat::MiniSnapshot { ref channel, epoch: 1, since_seq: 5 })] = fetches(&out)[..]
    else {
        panic!("{out:?}")
    };
    assert_eq!(channel, "totals");
    assert_eq!(h.s.counters().gaps, 1);
    assert!(h.delta("totals", 1, 8).is_empty());
    // The other channel keeps flowing.
    assert_eq!(
        delivered(&h.delta("meters.north", 2, 11)),
        [("meters.north".into(), "d2/11".into())]
    );
    let out = h.reply(id, "totals", 1, 7, Some(5));
    let got: Vec<_> = delivered(&out).into_iter().map(|(_, d)| d).collect();
    assert_eq!(got, ["m1/7", "d1/8"]);
}

#[test]
fn an_epoch_change_resnapshots_that_channel_only() {
    let mut h = H::new(cfg());
    h.ready(1000.0);
    live(&mut h, "totals", 1, 5);
    live(&mut h, "notices", 4, 2);
    let out = h.delta("totals", 2, 1);
    let [(id, FetchWhat::Snapshot { ref channel })] = fetches(&out)[..] else { panic!("{out:?}") };
    assert_eq!(channel, "totals");
    assert_eq!(h.s.counters().epoch_changes, 1);
    assert_eq!(delivered(&h.delta("notices", 4, 3)).len(), 1);
    // An old epoch's straggler is not delivered: only handed out as covered
    // (the ledger decides by stamp whether the snapshot holds its readings).
    let out = h.reply(id, "totals", 2, 0, None);
    let got: Vec<_> = delivered(&out).into_iter().map(|(_, d)| d).collect();
    assert_eq!(got, ["s2/0", "d2/1"]);
    let out = h.delta("totals", 1, 6);
    assert!(matches!(out[..], [Out::Covered { epoch: 1, seq: 6, .. }]), "{out:?}");
    let v = h.s.channels();
    assert_eq!(v.iter().map(|c| c.position).collect::<Vec<_>>(), [Some((2, 1)), Some((4, 3))]);
}

#[test]
fn duplicates_are_ignored_and_give_their_credit_back() {
    let mut h = H::new(SessionConfig { credit_window: 4, ..cfg() });
    h.ready(1000.0);
    live(&mut h, "totals", 1, 0);
    h.delta("totals", 1, 1);
    for _ in 0..3 {
        assert!(delivered(&h.delta("totals", 1, 1)).is_empty());
    }
    assert_eq!(h.s.counters().duplicates, 3);
    let v = &h.s.channels()[0];
    assert_eq!((v.outstanding, v.credit), (1, 3));
}

#[test]
fn a_lost_tail_is_found_by_the_heartbeat_ack() {
    let mut h = H::new(cfg());
    h.ready(1000.0);
    live(&mut h, "totals", 1, 5);
    let sent = |seq| vec![ChannelPos { channel: "totals".into(), epoch: 1, seq }];
    assert!(fetches(&h.server(ServerOp::HeartbeatAck { sent: sent(5) })).is_empty());
    let out = h.server(ServerOp::HeartbeatAck { sent: sent(9) });
    assert!(matches!(fetches(&out)[..], [(_, FetchWhat::MiniSnapshot { since_seq: 5, .. })]));
}

#[test]
fn stale_and_misfit_replies_are_refused_and_failed_fetches_retried() {
    let mut h = H::new(SessionConfig { fetch_retry_ms: 700.0, ..cfg() });
    h.ready(1000.0);
    let out = h.at(0.0, In::Subscribe { channel: "totals".into() });
    let (id, _) = fetches(&out)[0].clone();
    assert!(h.reply(id + 50, "totals", 1, 1, None).is_empty());
    assert_eq!(h.s.counters().stale_replies, 1);
    // A mini-snapshot when a full one was asked for does not fit.
    let out = h.reply(id, "totals", 1, 4, Some(2));
    assert_eq!(errors(&out), [SessionErrorCode::BadSnapshot]);
    assert!(fetches(&h.tick(699.0)).is_empty());
    let out = h.tick(700.0);
    let (id, _) = fetches(&out)[0].clone();
    h.at(700.0, In::FetchFailed { request_id: id });
    let out = h.tick(1400.0);
    let (id, _) = fetches(&out)[0].clone();
    assert_eq!(delivered(&h.reply(id, "totals", 1, 4, None)).len(), 1);
}

#[test]
fn buffers_are_bounded() {
    let mut h = H::new(SessionConfig { max_buffered_deltas: 3, credit_window: 100, ..cfg() });
    h.ready(1000.0);
    let out = h.at(0.0, In::Subscribe { channel: "totals".into() });
    let (id, _) = fetches(&out)[0].clone();
    for seq in 1..=3 {
        h.delta("totals", 1, seq);
    }
    let out = h.delta("totals", 1, 4);
    assert_eq!(errors(&out), [SessionErrorCode::BufferLimit]);
    assert_eq!(h.s.queue_depth(), 0);
    h.delta("totals", 1, 5);
    // The snapshot at 2 cannot be followed by 5: fetched again.
    let out = h.reply(id, "totals", 1, 2, None);
    assert_eq!(fetches(&out).len(), 1);
}

/// Buffered deltas are bounded by their encoded bytes too: the delta that
/// would pass `max_buffered_bytes` drops the buffer and re-snapshots the
/// channel (the in-flight fetch is superseded), with one `buffer_limit`.
#[test]
fn buffers_are_bounded_by_bytes() {
    let mut h = H::new(SessionConfig { max_buffered_bytes: 100_000, credit_window: 100, ..cfg() });
    h.ready(1000.0);
    let out = h.at(0.0, In::Subscribe { channel: "notices".into() });
    let (first, _) = fetches(&out)[0].clone();
    let big = |h: &mut H, seq: u64| {
        let op = ServerOp::Delta {
            channel: "notices".into(),
            epoch: 1,
            seq,
            body: body(seq),
            wire_bytes: 40_000,
        };
        h.server(op)
    };
    assert!(errors(&big(&mut h, 1)).is_empty());
    assert!(errors(&big(&mut h, 2)).is_empty());
    assert_eq!(h.s.channels()[0].buffered_bytes, 80_000);
    let out = big(&mut h, 3);
    assert_eq!(errors(&out), [SessionErrorCode::BufferLimit]);
    let refetch = fetches(&out);
    assert_eq!(refetch.len(), 1);
    assert_ne!(refetch[0].0, first);
    let v = &h.s.channels()[0];
    assert_eq!((v.buffered, v.buffered_bytes, v.paused), (0, 0, true));
    // Credit stays whole: the dropped deltas are freed for the next grant.
    assert_eq!(v.credit + v.pending + v.outstanding, 100);
    // The superseded reply is stale; the new one bootstraps the channel.
    assert!(delivered(&h.reply(first, "notices", 1, 3, None)).is_empty());
    assert_eq!(delivered(&h.reply(refetch[0].0, "notices", 1, 3, None)).len(), 1);
    assert!(!h.s.channels()[0].paused);
}

/// A server overrunning its credit is reported once per episode, not per delta.
#[test]
fn credit_overruns_are_reported_once_per_episode() {
    let mut h = H::new(SessionConfig { credit_window: 2, ..cfg() });
    h.ready(1000.0);
    let out = h.at(0.0, In::Subscribe { channel: "totals".into() });
    let (id, _) = fetches(&out)[0].clone();
    h.reply(id, "totals", 1, 0, None);
    h.delta("totals", 1, 1);
    h.delta("totals", 1, 2);
    let mut reported = Vec::new();
    for seq in 3..=10 {
        reported.extend(errors(&h.delta("totals", 1, seq)));
    }
    assert_eq!(reported, [SessionErrorCode::CreditOverrun]);
    assert_eq!(h.s.counters().credit_overruns, 8);
    // Renders free credit, the grant goes out, a delta is accepted: the episode
    // ends, and the next overrun is a new one, reported again.
    h.at(0.0, In::Rendered { channel: "totals".into(), frames: 2 });
    h.tick(0.0);
    assert_eq!(h.s.channels()[0].credit, 2);
    assert!(errors(&h.delta("totals", 1, 3)).is_empty());
    assert!(errors(&h.delta("totals", 1, 4)).is_empty());
    assert_eq!(errors(&h.delta("totals", 1, 5)), [SessionErrorCode::CreditOverrun]);
    assert!(errors(&h.delta("totals", 1, 6)).is_empty());
}

#[test]
fn channels_are_validated_and_bounded() {
    let mut h = H::new(SessionConfig { max_channels: 2, ..cfg() });
    for bad in ["", "a b", "x\"y", &"c".repeat(65)] {
        assert_eq!(
            errors(&h.at(0.0, In::Subscribe { channel: bad.into() })),
            [SessionErrorCode::BadChannel]
        );
    }
    h.at(0.0, In::Subscribe { channel: "totals".into() });
    h.at(0.0, In::Subscribe { channel: "totals".into() });
    h.at(0.0, In::Subscribe { channel: "meters.a-1_b".into() });
    assert_eq!(
        errors(&h.at(0.0, In::Subscribe { channel: "notices".into() })),
        [SessionErrorCode::ChannelLimit]
    );
    assert_eq!(
        errors(&h.at(0.0, In::Unsubscribe { channel: "notices".into() })),
        [SessionErrorCode::NotSubscribed]
    );
    h.at(0.0, In::Unsubscribe { channel: "totals".into() });
    assert!(errors(&h.at(0.0, In::Subscribe { channel: "notices".into() })).is_empty());
}

#[test]
fn a_start_with_a_huge_channel_list_lists_few_refusals_and_counts_the_rest() {
    // A page's `start` list is bounded only by maxPayloadBytes: 200,000 names,
    // every third a bad name, the rest distinct or repeated, against a limit of 4.
    let mut h = H::new(SessionConfig { max_channels: 4, ..cfg() });
    let names: Vec<String> = (0..200_000)
        .map(|i| match i % 3 {
            0 => format!("bad name {i}"),
            1 => format!("ch{}", i % 7),
            _ => format!("ch{i}"),
        })
        .collect();
    let (bad, valid): (Vec<&String>, Vec<&String>) =
        names.iter().partition(|n| !meterflow::core::session::valid_channel_name(n));
    let mut seen = std::collections::HashSet::new();
    let distinct: Vec<&String> =
        valid.iter().copied().filter(|n| seen.insert(n.as_str())).collect();
    // Every occurrence of a name outside the first four distinct is refused (a
    // refused name is not subscribed, so its repeats are refused again).
    let over = valid.iter().filter(|n| !distinct[..4].contains(n)).count();

    let out = h.at(0.0, In::StartWith { channels: names.clone() });
    let listed = MAX_LISTED_REFUSALS;
    let errs = errors(&out);
    let count = |c| errs.iter().filter(|&&e| e == c).count();
    // Each code: the first `listed` refusals one by one, then one error counting the rest.
    assert_eq!(count(SessionErrorCode::BadChannel), listed + 1, "{errs:?}");
    assert_eq!(count(SessionErrorCode::ChannelLimit), listed + 1, "{errs:?}");
    assert_eq!(errs.len(), 2 * listed + 2);
    let texts: Vec<String> = out
        .iter()
        .filter_map(|o| if let Out::Error(e) = o { Some(e.message.clone()) } else { None })
        .collect();
    let rest_bad = format!("{} more channels with a bad name refused", bad.len() - listed);
    let rest_over = format!("{} more channels past maxSubscriptions refused", over - listed);
    assert!(texts.iter().any(|t| t.starts_with(&rest_bad)), "{rest_bad}: {texts:?}");
    assert!(texts.iter().any(|t| t.starts_with(&rest_over)), "{rest_over}: {texts:?}");
    // The first four distinct valid names, in the list's order, are subscribed.
    let subscribed: Vec<String> = h.s.channels().into_iter().map(|c| c.name).collect();
    let first: Vec<String> = distinct.iter().take(4).map(|n| n.to_string()).collect();
    assert_eq!(subscribed, first);
}

#[test]
fn config_bounds_are_checked() {
    let bad = [
        SessionConfig { max_channels: 0, ..cfg() },
        SessionConfig { credit_window: 0, ..cfg() },
        SessionConfig { max_buffered_deltas: 0, ..cfg() },
        SessionConfig { max_buffered_bytes: 65_535, ..cfg() },
        SessionConfig { max_buffered_bytes: (1 << 30) + 1, ..cfg() },
        SessionConfig { backoff_cap_ms: 700_000.0, ..cfg() },
        SessionConfig { backoff_base_ms: 40_000.0, ..cfg() },
        SessionConfig { hello_timeout_ms: f64::NAN, ..cfg() },
        SessionConfig { fetch_retry_ms: 0.0, ..cfg() },
    ];
    for c in bad {
        let e = Session::new(c.clone()).err().unwrap_or_else(|| panic!("{c:?} accepted"));
        assert_eq!(e.code, SessionErrorCode::BadConfig);
    }
}

#[test]
fn client_ops_are_valid_json() {
    use meterflow::core::session::ChannelOffer;
    let offer = ChannelOffer { name: "totals".into(), credit: 5, position: Some((2, 9)) };
    let ops = [
        ClientOp::Identify { channels: vec![offer.clone()], binary_deltas: false },
        ClientOp::Resume {
            session_id: "s\"\\\n1".into(),
            channels: vec![offer.clone()],
            binary_deltas: true,
        },
        ClientOp::Heartbeat { seqs: vec![ChannelPos { channel: "a".into(), epoch: 1, seq: 2 }] },
        ClientOp::Subscribe { channel: "a".into(), credit: 3 },
        ClientOp::Unsubscribe { channel: "a".into() },
        ClientOp::Credit { grants: vec![("a".into(), 1), ("b".into(), 2)] },
    ];
    for op in ops {
        let v: serde_json::Value = serde_json::from_str(&op.to_json()).expect("valid JSON");
        assert_eq!(v["op"], op.name());
    }
    let v: serde_json::Value = serde_json::from_str(
        &ClientOp::Resume {
            session_id: "s\"\\\n1".into(),
            channels: vec![ChannelOffer { name: "t".into(), credit: 5, position: Some((2, 9)) }],
            binary_deltas: false,
        }
        .to_json(),
    )
    .unwrap();
    assert_eq!(v["session_id"], "s\"\\\n1");
    assert_eq!(v["channels"][0]["last_seq"], 9);
    // The capability is written only when asked: a client that does not ask
    // sends what it sent before, and gets JSON text DELTAs.
    assert!(v.get("binary_deltas").is_none());
    for binary_deltas in [false, true] {
        let op = ClientOp::Identify { channels: vec![offer.clone()], binary_deltas };
        let v: serde_json::Value = serde_json::from_str(&op.to_json()).unwrap();
        assert_eq!(v.get("binary_deltas").and_then(|b| b.as_bool()), binary_deltas.then_some(true));
    }
}

/// Arbitrary inputs in any order, with extreme numbers (u64::MAX positions, NaN
/// and infinite times and intervals, huge renders), never panic and never let a
/// store pass its cap.
#[test]
fn arbitrary_inputs_never_panic_and_stay_bounded() {
    let nums = [0u64, 1, 2, 3, 1 << 53, u64::MAX - 1, u64::MAX];
    let times = [0.0, 1.0, 1e3, 1e12, -5.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY];
    let names = ["totals", "notices", "meters.a", "", "x y", "meters.b"];
    for seed in 0..300 {
        let mut r = rng::Rng(seed);
        let c = SessionConfig {
            max_channels: 1 + r.below(3) as u32,
            max_buffered_deltas: 1 + r.below(4) as u32,
            credit_window: 1 + r.below(4) as u32,
            max_buffered_bytes: 65_536 + r.below(65_536),
            seed,
            ..SessionConfig::default()
        };
        let mut s = Session::new(c.clone()).unwrap();
        let pick = |r: &mut rng::Rng, n: usize| r.below(n as u64) as usize;
        for _ in 0..400 {
            let num = |r: &mut rng::Rng| nums[r.below(nums.len() as u64) as usize];
            let name = names[pick(&mut r, names.len())].to_string();
            let input = match pick(&mut r, 16) {
                0 => In::Start,
                1 => In::Stop,
                2 => In::Closed {
                    code: [1000, 1006, 4000, 4004, 4007, 0, 65535][pick(&mut r, 7)],
                    reason: String::new(),
                },
                3 => In::Server(ServerOp::Hello {
                    heartbeat_interval_ms: times[pick(&mut r, times.len())],
                    session_id: "\u{0}\"".into(),
                    server_time_ms: f64::NAN,
                    resume_url: Some(String::new()),
                }),
                4 => In::Server(ServerOp::Ready { session_id: name }),
                5 => In::Server(ServerOp::Resumed),
                6 => In::Server(ServerOp::HeartbeatAck {
                    sent: vec![ChannelPos { channel: name, epoch: num(&mut r), seq: num(&mut r) }],
                }),
                7 => In::Server(ServerOp::InvalidSession { resumable: r.chance(0.5) }),
                8 => In::Server(ServerOp::Reconnect),
                9 | 10 => In::Server(ServerOp::Delta {
                    channel: name,
                    epoch: num(&mut r),
                    seq: num(&mut r),
                    body: body(0),
                    wire_bytes: [0, 1, 30_000, 70_000, usize::MAX][pick(&mut r, 5)],
                }),
                11 => In::Snapshot(SnapshotReply {
                    request_id: r.below(40),
                    channel: name,
                    epoch: num(&mut r),
                    snapshot_seq: num(&mut r),
                    since_seq: r.chance(0.5).then(|| num(&mut r)),
                    body: body(0),
                }),
                12 => In::FetchFailed { request_id: r.below(40) },
                13 => In::Subscribe { channel: name },
                14 => In::Rendered { channel: name, frames: [0, 1, u32::MAX][pick(&mut r, 3)] },
                _ => In::Tick,
            };
            let t = times[pick(&mut r, times.len())];
            let _ = s.handle(input, t);
            let views = s.channels();
            assert!(views.len() <= c.max_channels as usize);
            for v in views {
                assert!(v.buffered <= c.max_buffered_deltas.min(c.credit_window) as usize);
                assert!(v.buffered_bytes <= c.max_buffered_bytes);
                assert!(v.outstanding <= c.credit_window && v.accepted <= v.granted);
            }
        }
    }
}

#[test]
fn detail_fetches_get_their_own_request_ids() {
    let mut h = H::new(cfg());
    let out = h.at(0.0, In::Subscribe { channel: "totals".into() });
    let (snap, _) = fetches(&out)[0].clone();
    let out = h.at(0.0, In::FetchDetail { meter: "m-1".into() });
    let [(id, FetchWhat::Detail { ref meter })] = fetches(&out)[..] else { panic!("{out:?}") };
    assert_eq!((meter.as_str(), id > snap), ("m-1", true));
    // A reply to it is not the session's: ignored as stale, the channel still waits.
    assert!(h.reply(id, "totals", 1, 1, None).is_empty());
    for bad in [String::new(), "m".repeat(257)] {
        assert_eq!(
            errors(&h.at(0.0, In::FetchDetail { meter: bad })),
            [SessionErrorCode::BadMeterId]
        );
    }
}
