//! The cost of carrying a client's identity upstream (`identity: client`): minting the upstream certificate
//! for a subject (once an hour per subject; a fresh ECDSA P-256 key, signed by the clients CA) and the cache
//! hit every other connection of that subject pays. `cargo bench -p kaas-bench --bench identity`.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use kaas_proxy::upstream::identity::{ClientIdentity, ClientsCa, MintCache};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

fn clients_ca(dir: &std::path::Path) -> ClientsCa {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, "bench clients CA");
    let cert = params.self_signed(&key).expect("CA");
    std::fs::write(dir.join("ca.pem"), cert.pem()).expect("write");
    std::fs::write(dir.join("ca.key"), key.serialize_pem()).expect("write");
    ClientsCa::load(&dir.join("ca.pem"), &dir.join("ca.key")).expect("load")
}

fn subject() -> Vec<u8> {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::OrganizationName, "acme");
    params.distinguished_name.push(DnType::OrganizationalUnitName, "payments");
    params.distinguished_name.push(DnType::CommonName, "orders-service");
    let cert = params.self_signed(&key).expect("cert");
    ClientIdentity::from_leaf(cert.der()).expect("subject").subject_der
}

fn identity(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = clients_ca(dir.path());
    let subject = subject();
    c.bench_function("mint upstream certificate (P-256 CA)", |b| b.iter(|| ca.mint(&subject).expect("mint")));
    let cache = MintCache::new(4096);
    let now = Instant::now();
    for i in 0..4096u32 {
        cache.insert(i.to_be_bytes().to_vec(), i, now);
    }
    c.bench_function("minted certificate cache hit (4096 subjects)", |b| {
        b.iter(|| cache.get(&77u32.to_be_bytes(), now + Duration::from_secs(1)).expect("hit"))
    });
}

criterion_group!(benches, identity);
criterion_main!(benches);
