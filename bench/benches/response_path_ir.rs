//! Runs each response-path case N times through the production function, for instruction counts:
//! `valgrind --tool=callgrind --toggle-collect='*production*' <bench binary> [case] [N]` (the frame is built
//! outside `production` and dropped outside it, so only the response path is counted).

mod common;

use std::hint::black_box;

use kaas_proxy::kafka::codec::Frame;
use kaas_proxy::kafka::rewrite::Advertise;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let which = args.first().cloned().unwrap_or_default();
    let n: usize = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(1000);
    let adv = Advertise::new("acme", "kaas.example.com", 9092);
    for case in common::cases().into_iter().filter(|c| which.is_empty() || c.name == which) {
        let mut bytes = 0;
        for _ in 0..n {
            let frame = Frame::from_body(&case.frame_body);
            let out = common::production(black_box(frame), &case.request, &adv);
            bytes += black_box(out).body().len();
        }
        println!("{}: {n} calls, {bytes} bytes out", case.name);
    }
}
