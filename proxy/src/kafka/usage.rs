//! What a Produce request and a Fetch response carry, topic by topic, for the usage records
//! ([`crate::usage`]): the bytes of their record sets and the records in them, counted from the record-batch
//! headers. Records are never decompressed or decoded; the walk uses the bounded [`Reader`] of [`super::wire`]
//! and allocates nothing.
//!
//! What a count means: bytes are the record sets' bytes as they pass (what a client sent, or was sent), framing
//! of the batches included, request and response headers not. Records are each batch's `records_count` (a
//! magic 0/1 message counts as one, a compressed wrapper included); control batches (transaction markers) are
//! left out, and so is a Fetch response's last batch when the broker cut it short (KIP-74: the client fetches it
//! again, whole). A message that cannot be walked counts nothing: [`produced`] and [`fetched`] check the whole
//! message before they report any of it. Bytes after a message's last field are ignored, as Kafka does (a
//! Produce request with them is stored, so it is counted).

use kafka_protocol::messages::ApiKey;

use super::wire::{Reader, WireResult};

/// A topic's id (KIP-516), as Produce and Fetch name topics from v13.
pub type TopicId = [u8; 16];

/// How a message names a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic<'a> {
    /// By name (Produce and Fetch up to v12).
    Name(&'a str),
    /// By id (from v13); the usage records name it once a Metadata response has told its name.
    Id(TopicId),
}

/// One topic's share of a message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Volume {
    /// Bytes of its record sets.
    pub bytes: u64,
    /// Records in them.
    pub records: u64,
}

const TOPIC_MIN: usize = 2;
const PARTITION_MIN: usize = 4;
const UUID: usize = 16;

/// Calls `each` once per topic of a Produce request's body (after the request header) of `version`, with what
/// its partitions' record sets hold. Nothing is reported when the body cannot be walked.
pub fn produced(body: &[u8], version: i16, mut each: impl FnMut(Topic<'_>, Volume)) -> WireResult<()> {
    let flexible = ApiKey::Produce.request_header_version(version) >= 2;
    walk_produce(body, version, flexible, &mut |_, _| {})?;
    walk_produce(body, version, flexible, &mut each)
}

/// Calls `each` once per topic of a Fetch response's body (after the response header) of `version`, with
/// what its partitions' record sets hold. Nothing is reported when the body cannot be walked.
pub fn fetched(body: &[u8], version: i16, mut each: impl FnMut(Topic<'_>, Volume)) -> WireResult<()> {
    let flexible = ApiKey::Fetch.response_header_version(version) >= 1;
    walk_fetch(body, version, flexible, &mut |_, _| {})?;
    walk_fetch(body, version, flexible, &mut each)
}

fn walk_produce(
    body: &[u8],
    v: i16,
    flexible: bool,
    each: &mut dyn FnMut(Topic<'_>, Volume),
) -> WireResult<()> {
    let mut r = Reader::new(body, flexible);
    if v >= 3 {
        r.nullable_string("transactional_id")?;
    }
    r.skip(2 + 4, "acks and timeout_ms")?;
    r.each("topic_data", TOPIC_MIN, |r| {
        let topic = topic(r, v)?;
        let mut volume = Volume::default();
        r.each("partition_data", PARTITION_MIN, |r| {
            r.i32("partition_data.index")?;
            add_records(r, &mut volume, "partition_data.records")?;
            r.skip_tagged_fields("partition_data tags")
        })?;
        r.skip_tagged_fields("topic_data tags")?;
        each(topic, volume);
        Ok(())
    })?;
    // Kafka reads a request's fields and ignores what follows them, so a Produce with bytes after its last
    // field is stored: it is counted like any other.
    r.skip_tagged_fields("tags")
}

fn walk_fetch(
    body: &[u8],
    v: i16,
    flexible: bool,
    each: &mut dyn FnMut(Topic<'_>, Volume),
) -> WireResult<()> {
    let mut r = Reader::new(body, flexible);
    if v >= 1 {
        r.i32("throttle_time_ms")?;
    }
    if v >= 7 {
        r.skip(2 + 4, "error_code and session_id")?;
    }
    r.each("responses", TOPIC_MIN, |r| {
        let topic = topic(r, v)?;
        let mut volume = Volume::default();
        r.each("partitions", PARTITION_MIN, |r| {
            fetch_partition_head(r, v)?;
            add_records(r, &mut volume, "partitions.records")?;
            r.skip_tagged_fields("partitions tags")
        })?;
        r.skip_tagged_fields("responses tags")?;
        each(topic, volume);
        Ok(())
    })?;
    // As clients read it: what follows the last field is ignored.
    r.skip_tagged_fields("tags")
}

/// A Fetch response partition's fields before its records, stepped over (the address rewrite walks the same).
pub(super) fn fetch_partition_head(r: &mut Reader<'_>, v: i16) -> WireResult<()> {
    r.skip(4 + 2 + 8, "partitions.high_watermark")?;
    if v >= 4 {
        r.skip(8, "partitions.last_stable_offset")?;
    }
    if v >= 5 {
        r.skip(8, "partitions.log_start_offset")?;
    }
    if v >= 4 {
        r.each_nullable("aborted_transactions", 16, |r| {
            r.skip(16, "aborted_transactions.first_offset")?;
            r.skip_tagged_fields("aborted_transactions tags")
        })?;
    }
    if v >= 11 {
        r.i32("partitions.preferred_read_replica")?;
    }
    Ok(())
}

/// A topic's name (up to v12) or id (from v13), the same in Produce requests and Fetch responses.
fn topic<'a>(r: &mut Reader<'a>, v: i16) -> WireResult<Topic<'a>> {
    if v <= 12 {
        let name = r.string("topic name")?;
        Ok(Topic::Name(r.text(name, "topic name")?))
    } else {
        let mut id = [0; UUID];
        id.copy_from_slice(r.take(UUID, "topic_id")?);
        Ok(Topic::Id(id))
    }
}

fn add_records(r: &mut Reader<'_>, volume: &mut Volume, field: &'static str) -> WireResult<()> {
    if let Some(set) = r.nullable_bytes(field)? {
        let set = &r.buf()[set];
        volume.bytes += set.len() as u64;
        volume.records += records_in(set);
    }
    Ok(())
}

/// Where a batch's fields sit (Kafka's `DefaultRecordBatch`; `LegacyRecord` shares the first three).
const LENGTH_AT: usize = 8;
const MAGIC_AT: usize = 16;
const ATTRIBUTES_AT: usize = 21;
const COUNT_AT: usize = 57;
const V2_HEADER: usize = 61;
/// The attributes bit of a control batch (a transaction marker, not the application's records).
const CONTROL: i16 = 0x20;

/// The records in a record set, from its batch headers: magic 2 batches by their `records_count`, control
/// batches left out; magic 0 and 1 messages one each. Stops at a batch cut short or unreadable (those bytes
/// are counted, their records not).
pub fn records_in(mut set: &[u8]) -> u64 {
    let mut records = 0u64;
    while set.len() > MAGIC_AT {
        let i32_at = |at: usize| i32::from_be_bytes([set[at], set[at + 1], set[at + 2], set[at + 3]]);
        let Ok(length) = usize::try_from(i32_at(LENGTH_AT)) else { break };
        let size = LENGTH_AT + 4 + length;
        if size > set.len() {
            break;
        }
        if set[MAGIC_AT] >= 2 {
            if size < V2_HEADER {
                break;
            }
            let attributes = i16::from_be_bytes([set[ATTRIBUTES_AT], set[ATTRIBUTES_AT + 1]]);
            if attributes & CONTROL == 0 {
                records += u64::try_from(i32_at(COUNT_AT)).unwrap_or(0);
            }
        } else {
            records += 1;
        }
        set = &set[size..];
    }
    records
}

#[cfg(test)]
mod tests;
