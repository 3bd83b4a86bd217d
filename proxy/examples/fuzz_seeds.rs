//! Writes a seed corpus for the `broker_response` fuzz target (proxy/fuzz): valid responses of every API and
//! version the proxy rewrites, each prefixed with the byte that selects its API and version in the target.
//! `cargo run -p kaas-proxy --features testkit --example fuzz_seeds -- DIR`

use kaas_proxy::testkit::{random_response, rewritten_versions, Rng};

fn main() -> anyhow::Result<()> {
    let dir = std::env::args().nth(1).ok_or_else(|| anyhow::anyhow!("usage: fuzz_seeds DIR"))?;
    std::fs::create_dir_all(&dir)?;
    let mut rng = Rng::new(1);
    for (index, (api, version)) in rewritten_versions().into_iter().enumerate() {
        for n in 0..4 {
            let mut seed = vec![u8::try_from(index)?];
            seed.extend_from_slice(&random_response(api, version, &mut rng));
            std::fs::write(format!("{dir}/{api:?}-v{version}-{n}"), seed)?;
        }
    }
    Ok(())
}
