//! The leak guard: after a rewrite, each endpoint the walk found is read again where it now lies in the bytes
//! that go to the client, and anything that is not the proxy's own name counts as a leak. Neighbour:
//! [`super::scan`] finds the endpoints; [`crate::kafka::process_response`] refuses a response with a leak.

use kafka_protocol::messages::ApiKey;

use super::{flexible, scan, Advertise, Endpoint, RewriteError};
use crate::kafka::wire::{Reader, Shifts, WireResult};

/// The leak guard: how many of the `endpoints` a walk of `src` found are, in `out` (`src` with edits applied
/// that moved its bytes as `shifts` says), not the proxy's own names under `adv` (`b<node-id>.<tenant>.<domain>`
/// on the advertised port, or a blank host for ids below zero): addresses that would reach the client. Reads
/// each endpoint where it now is, not the whole response again. Always 0 unless the rewrite has a bug; the
/// check is what proves it for each response.
pub fn foreign(
    out: &[u8],
    endpoints: &[Endpoint],
    shifts: &Shifts,
    adv: &Advertise,
    flexible: bool,
) -> usize {
    let ours = |e: &Endpoint| -> WireResult<bool> {
        let mut r = Reader::new(out.get(shifts.at(e.at)..).unwrap_or_default(), flexible);
        let host = r.string("host")?;
        let host = r.text(host, "host")?;
        let port = r.i32("port")?;
        Ok(match e.node_id {
            ..0 => host.is_empty(),
            id => adv.is_host(host, id) && port == i32::from(adv.port),
        })
    };
    endpoints.iter().filter(|e| !ours(e).unwrap_or(false)).count()
}

/// Counts the endpoints of a body (after the response header) that are not the proxy's own names under `adv`,
/// with the guard of [`foreign`], after a walk of its own: for checking a response from outside the response
/// path (tests, fuzz targets).
pub fn foreign_endpoints(
    api: ApiKey,
    version: i16,
    body: &[u8],
    adv: &Advertise,
) -> Result<usize, RewriteError> {
    let walked = scan(api, version, body, None)?;
    Ok(foreign(body, &walked.endpoints, &Shifts::default(), adv, flexible(api, version)))
}
