//! Side-by-side cost of group operations, in one run, on the same work:
//! OpenMLS and mls-rs (RFC 9420, X25519 / AES-128-GCM / SHA-256 / Ed25519,
//! RustCrypto providers) against smp-groups (the core's simulation).
//!
//! Single thread; each member its own client, provider and storage; every
//! message serialized and parsed inside the timed region; group state persisted
//! after every operation. The time reported is the process CPU time of the
//! whole fan-out (one thread: the sender's and every receiver's work added up),
//! median over the iterations. See `docs/costs.md` ("Compared with MLS").
//!
//! Usage: `mls-compare [--sizes 8,32,128] [--iters-msg N] [--iters-change N]
//! [--only ours|openmls|mls-rs] [--ops all|messages|changes] [--out DIR]`.

mod mlsrs_side;
mod openmls_side;
mod ours_side;
mod plot;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// One group implementation, driven the same way for every protocol.
pub trait Protocol: Sized {
    /// A client ready to be added (its key package, or its connection with
    /// the adder), prepared outside the timed region.
    type Joiner;
    /// Its name in the table.
    fn name() -> &'static str;
    /// A group of `n` members in use; room for `spare` later joiners.
    fn setup(n: usize, spare: usize) -> Self;
    /// Current group size.
    fn size(&self) -> usize;
    /// Member `from` sends `body`; every other member decrypts it.
    fn send(&mut self, from: usize, body: &[u8]);
    /// A new client, with what the adder needs from it beforehand.
    fn prepare_joiner(&mut self) -> Self::Joiner;
    /// Member 0 adds the joiner; every member and the joiner process the change.
    fn add(&mut self, joiner: Self::Joiner);
    /// Member 0 removes member `i`; every other member processes the change.
    fn remove(&mut self, i: usize);
    /// Every member agrees on the group size (outside the timed region).
    fn check(&self);
}

/// One timing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    /// Process CPU time (every thread).
    pub cpu: Duration,
    /// Wall-clock time.
    pub wall: Duration,
}

fn cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_PROCESS_CPUTIME_ID is
    // supported on Linux.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &raw mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

/// Runs `f`, timing it.
pub fn measure<T>(f: impl FnOnce() -> T) -> (T, Sample) {
    let c0 = cpu_time();
    let w0 = Instant::now();
    let out = std::hint::black_box(f());
    let wall = w0.elapsed();
    let cpu = cpu_time().saturating_sub(c0);
    (out, Sample { cpu, wall })
}

/// The median (sorts `v`).
pub fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    match v.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2,
    }
}

/// The operations measured, in table order.
pub const OPS: [&str; 4] = ["message 15 kB", "message 100 B", "add", "remove"];

/// The implementations, in table order.
pub const IMPLS: [&str; 3] = ["OpenMLS", "mls-rs", "ours"];

/// Measurements of one operation, size and implementation.
#[derive(Clone, Debug)]
pub struct Row {
    /// One of [`OPS`], or a detail of ours (`... delivery`, `... receipts`).
    pub op: String,
    /// Group size before the operation.
    pub n: usize,
    /// One of [`IMPLS`].
    pub imp: &'static str,
    /// The timings.
    pub samples: Vec<Sample>,
}

impl Row {
    fn median_cpu(&self) -> Duration {
        let mut v: Vec<Duration> = self.samples.iter().map(|s| s.cpu).collect();
        median(&mut v)
    }

    fn median_wall(&self) -> Duration {
        let mut v: Vec<Duration> = self.samples.iter().map(|s| s.wall).collect();
        median(&mut v)
    }
}

struct Opts {
    sizes: Vec<usize>,
    iters_msg: usize,
    iters_change: Option<usize>,
    only: Option<String>,
    ops: String,
    out: String,
}

fn opts() -> Opts {
    let mut o = Opts {
        sizes: vec![8, 32, 128],
        iters_msg: 50,
        iters_change: None,
        only: None,
        ops: "all".to_owned(),
        out: concat!(env!("CARGO_MANIFEST_DIR"), "/results").to_owned(),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().unwrap_or_default();
        match a.as_str() {
            "--sizes" => {
                o.sizes = value()
                    .split(',')
                    .map(|s| s.trim().parse().expect("--sizes 8,32,128"))
                    .collect();
            }
            "--iters-msg" => o.iters_msg = value().parse().expect("--iters-msg N"),
            "--iters-change" => o.iters_change = Some(value().parse().expect("--iters-change N")),
            "--only" => o.only = Some(value()),
            "--ops" => o.ops = value(),
            "--out" => o.out = value(),
            // Passed by `cargo bench`.
            "--bench" => {}
            other => panic!("unknown argument {other:?}"),
        }
    }
    o
}

/// Adds and removes per size: fewer for the large groups, whose changes are
/// slow in our simulation.
fn change_iters(o: &Opts, n: usize) -> usize {
    o.iters_change
        .unwrap_or(if n >= 128 { 15 } else { 30 })
        .max(1)
}

/// Runs every operation on `P` at size `n`; prints progress on stderr.
fn run<P: Protocol + 'static>(o: &Opts, n: usize, rows: &mut Vec<Row>, extra: &mut Vec<Row>) {
    let changes = change_iters(o, n);
    // Two joiners per iteration, one iteration of warm-up.
    let spare = 2 * (changes + 1);
    let (mut g, setup) = measure(|| P::setup(n, spare));
    g.check();
    assert_eq!(g.size(), n);
    eprintln!(
        "{:>8} n={n:<4} group set up in {:.1} s",
        P::name(),
        setup.wall.as_secs_f64()
    );
    let from = n / 2;
    let messages = o.ops != "changes";
    for (op, len) in [(OPS[0], 15_000usize), (OPS[1], 100)] {
        if !messages {
            break;
        }
        let body: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        g.send(from, &body); // warm-up
        let mut samples = Vec::with_capacity(o.iters_msg);
        let mut split = Vec::new();
        for _ in 0..o.iters_msg {
            let ((), s) = measure(|| g.send(from, &body));
            samples.push(s);
            if let Some(any) = as_ours(&mut g) {
                split.extend(any.last_split.take());
            }
        }
        report(P::name(), op, n, &samples);
        rows.push(Row {
            op: op.to_owned(),
            n,
            imp: P::name(),
            samples,
        });
        if !split.is_empty() {
            for (part, pick) in [("delivery", 0usize), ("receipts", 1)] {
                extra.push(Row {
                    op: format!("{op}: {part}"),
                    n,
                    imp: P::name(),
                    samples: split
                        .iter()
                        .map(|s| if pick == 0 { s.0 } else { s.1 })
                        .collect(),
                });
            }
        }
    }
    g.check();
    // Each iteration: add a member (n -> n+1, timed), remove it again (not
    // timed), remove the newest other member (n -> n-1, timed), add a member
    // back (not timed). The first iteration is a warm-up.
    let mut adds = Vec::new();
    let mut removes = Vec::new();
    for i in 0..=changes {
        if o.ops == "messages" {
            break;
        }
        let j = g.prepare_joiner();
        let ((), s_add) = measure(|| g.add(j));
        g.check();
        assert_eq!(g.size(), n + 1);
        g.remove(n);
        let ((), s_rem) = measure(|| g.remove(n - 1));
        g.check();
        assert_eq!(g.size(), n - 1);
        let j = g.prepare_joiner();
        g.add(j);
        assert_eq!(g.size(), n);
        if i > 0 {
            adds.push(s_add);
            removes.push(s_rem);
        }
    }
    g.check();
    for (op, samples) in [(OPS[2], adds), (OPS[3], removes)] {
        if samples.is_empty() {
            continue;
        }
        report(P::name(), op, n, &samples);
        rows.push(Row {
            op: op.to_owned(),
            n,
            imp: P::name(),
            samples,
        });
    }
    if let Some(ours) = as_ours(&mut g) {
        extra.push(Row {
            op: "visible connection before an add (not counted)".to_owned(),
            n,
            imp: P::name(),
            samples: std::mem::take(&mut ours.connect_samples),
        });
    }
}

/// The simulation's own figures, when `g` is ours.
fn as_ours<P: Protocol + 'static>(g: &mut P) -> Option<&mut ours_side::Ours> {
    (g as &mut dyn std::any::Any).downcast_mut::<ours_side::Ours>()
}

fn report(name: &str, op: &str, n: usize, samples: &[Sample]) {
    let mut v: Vec<Duration> = samples.iter().map(|s| s.cpu).collect();
    eprintln!(
        "{name:>8} n={n:<4} {op:<14} {:>10} (median of {})",
        fmt(median(&mut v)),
        samples.len()
    );
}

/// A duration with three significant digits.
pub fn fmt(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1_000.0 {
        sig3(us, "µs")
    } else if us < 1_000_000.0 {
        sig3(us / 1e3, "ms")
    } else {
        sig3(us / 1e6, "s")
    }
}

fn sig3(x: f64, unit: &str) -> String {
    if x >= 100.0 {
        format!("{x:.0} {unit}")
    } else if x >= 10.0 {
        format!("{x:.1} {unit}")
    } else {
        format!("{x:.2} {unit}")
    }
}

fn lookup<'a>(rows: &'a [Row], op: &str, n: usize, imp: &str) -> Option<&'a Row> {
    rows.iter().find(|r| r.op == op && r.n == n && r.imp == imp)
}

fn table(rows: &[Row], sizes: &[usize]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "| operation | n | OpenMLS | mls-rs | ours | ours / faster MLS |"
    );
    let _ = writeln!(t, "|---|---:|---:|---:|---:|---:|");
    for op in OPS {
        for &n in sizes {
            let cell = |imp: &str| lookup(rows, op, n, imp).map(Row::median_cpu);
            let (a, b, c) = (cell(IMPLS[0]), cell(IMPLS[1]), cell(IMPLS[2]));
            let show = |d: Option<Duration>| d.map_or_else(|| "-".to_owned(), fmt);
            let best = match (a, b) {
                (Some(x), Some(y)) => Some(x.min(y)),
                (x, y) => x.or(y),
            };
            let ratio = match (c, best) {
                (Some(c), Some(b)) if !b.is_zero() => {
                    format!("{:.1}", c.as_secs_f64() / b.as_secs_f64())
                }
                _ => "-".to_owned(),
            };
            let _ = writeln!(
                t,
                "| {op} | {n} | {} | {} | {} | {ratio} |",
                show(a),
                show(b),
                show(c)
            );
        }
    }
    t
}

fn csv(rows: &[Row]) -> String {
    let mut t = String::from(
        "operation,n,implementation,iterations,median_cpu_ms,median_wall_ms,min_cpu_ms,max_cpu_ms\n",
    );
    for r in rows {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let min = r.samples.iter().map(|s| s.cpu).min().unwrap_or_default();
        let max = r.samples.iter().map(|s| s.cpu).max().unwrap_or_default();
        let _ = writeln!(
            t,
            "{},{},{},{},{:.4},{:.4},{:.4},{:.4}",
            r.op,
            r.n,
            r.imp,
            r.samples.len(),
            ms(r.median_cpu()),
            ms(r.median_wall()),
            ms(min),
            ms(max)
        );
    }
    t
}

fn main() {
    let o = opts();
    // One thread: OpenMLS uses rayon unconditionally. The whole run happens
    // inside a one-thread pool, so its parallel iterators run inline here.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("thread pool");
    let (rows, extra) = pool.install(|| {
        let mut rows = Vec::new();
        let mut extra = Vec::new();
        let want = |name: &str| {
            o.only
                .as_deref()
                .is_none_or(|x| x.eq_ignore_ascii_case(name))
        };
        for &n in &o.sizes {
            if want(openmls_side::OpenMls::name()) {
                run::<openmls_side::OpenMls>(&o, n, &mut rows, &mut extra);
            }
            if want(mlsrs_side::MlsRs::name()) {
                run::<mlsrs_side::MlsRs>(&o, n, &mut rows, &mut extra);
            }
            if want(ours_side::Ours::name()) {
                run::<ours_side::Ours>(&o, n, &mut rows, &mut extra);
                if o.ops != "changes" {
                    for (op, samples) in ours_side::policy_rows(n, (o.iters_msg / 5).max(3)) {
                        report("ours", &op, n, &samples);
                        extra.push(Row {
                            op,
                            n,
                            imp: "ours",
                            samples,
                        });
                    }
                }
            }
        }
        (rows, extra)
    });
    println!();
    println!("CPU time per operation, median (one thread; sender and every receiver added up)");
    println!();
    print!("{}", table(&rows, &o.sizes));
    if !extra.is_empty() {
        println!();
        println!("ours, in detail:");
        println!();
        for r in &extra {
            println!("  {} n={}: {}", r.op, r.n, fmt(r.median_cpu()));
        }
    }
    let mut all = rows.clone();
    all.extend(extra);
    std::fs::create_dir_all(&o.out).expect("results directory");
    let csv_path = format!("{}/costs.csv", o.out);
    std::fs::write(&csv_path, csv(&all)).expect("write csv");
    let svg_path = format!("{}/costs.svg", o.out);
    plot::draw(&svg_path, &rows, &o.sizes).expect("plot");
    println!();
    println!("wrote {csv_path} and {svg_path}");
}
