//! Bounded reading of broker bytes, and splicing.
//!
//! [`Reader`] is a cursor over the bytes that arrived: every length and count is checked against what remains
//! before anything is read, nothing is ever reserved from a number a peer sent, and a failure names the field.
//! [`Edits`] collects the few byte ranges a walker wants replaced and applies them in one copy, telling where
//! the rest moved ([`Shifts`]). Used by [`super::rewrite`] and [`super::versions`], which walk responses instead
//! of decoding them; nothing here allocates unless an edit is recorded.

use std::ops::Range;

use bytes::{BufMut, BytesMut};

/// Why a response could not be walked: the field, where, and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem} (at byte {at})")]
pub struct WireError {
    /// The field being read, as the walker names it (`brokers.host`, say).
    pub field: &'static str,
    /// Byte offset in the walked buffer where the field (or the failing read) starts.
    pub at: usize,
    /// What was wrong.
    pub problem: Problem,
}

/// What was wrong with a field of broker bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// A value, or the bytes a length promises, would run past the end.
    #[error("needs {need} bytes, {left} remain")]
    Truncated {
        /// Bytes the field needs.
        need: u64,
        /// Bytes left in the reader.
        left: usize,
    },
    /// A length or count below -1 (-1 is null).
    #[error("length {0} is negative")]
    NegativeLength(i64),
    /// A null string or array where the protocol requires a value.
    #[error("null where a value is required")]
    Null,
    /// An array count whose smallest elements would not fit in the bytes left; refused before reading any.
    #[error("count {count} is more than the {left} bytes that remain could hold")]
    CountTooLarge {
        /// The element count read.
        count: u64,
        /// Bytes left in the reader.
        left: usize,
    },
    /// An unsigned varint still continues after 5 bytes (more than 32 bits).
    #[error("varint longer than 5 bytes")]
    Varint,
    /// Bytes remain after the walk of the message (or of a tagged field it read): the layout was misread.
    /// Holds how many.
    #[error("{0} bytes left over at the end")]
    Trailing(usize),
    /// A string that must be text (a host name) is not UTF-8.
    #[error("not UTF-8")]
    Utf8,
}

/// The result of a [`Reader`] step.
pub type WireResult<T> = Result<T, WireError>;

/// A cursor over `buf[pos..end]`. `flexible` selects the compact encodings (KIP-482) of strings, bytes and
/// arrays and the tagged-field sections.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
    flexible: bool,
}

impl<'a> Reader<'a> {
    /// A reader over all of `buf`; `flexible` for the flexible versions of the message (KIP-482).
    pub fn new(buf: &'a [u8], flexible: bool) -> Self {
        Reader { buf, pos: 0, end: buf.len(), flexible }
    }

    /// The offset of the next byte to read, in [`Self::buf`].
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Whether compact encodings and tagged fields are in use.
    pub fn flexible(&self) -> bool {
        self.flexible
    }

    /// The whole buffer the reader walks (positions are absolute).
    pub fn buf(&self) -> &'a [u8] {
        self.buf
    }

    fn left(&self) -> usize {
        self.end - self.pos
    }

    fn fail<T>(&self, field: &'static str, problem: Problem) -> WireResult<T> {
        Err(WireError { field, at: self.pos, problem })
    }

    /// The next `n` bytes, or [`Problem::Truncated`] when fewer remain.
    pub fn take(&mut self, n: usize, field: &'static str) -> WireResult<&'a [u8]> {
        if n > self.left() {
            return self.fail(field, Problem::Truncated { need: n as u64, left: self.left() });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Steps over `n` bytes, checked like [`Self::take`].
    pub fn skip(&mut self, n: usize, field: &'static str) -> WireResult<()> {
        self.take(n, field).map(|_| ())
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> WireResult<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, field)?);
        Ok(a)
    }

    /// A signed byte.
    pub fn i8(&mut self, field: &'static str) -> WireResult<i8> {
        Ok(i8::from_be_bytes(self.array(field)?))
    }

    /// A big-endian i16.
    pub fn i16(&mut self, field: &'static str) -> WireResult<i16> {
        Ok(i16::from_be_bytes(self.array(field)?))
    }

    /// A big-endian i32.
    pub fn i32(&mut self, field: &'static str) -> WireResult<i32> {
        Ok(i32::from_be_bytes(self.array(field)?))
    }

    /// A big-endian i64.
    pub fn i64(&mut self, field: &'static str) -> WireResult<i64> {
        Ok(i64::from_be_bytes(self.array(field)?))
    }

    /// An unsigned varint of at most 5 bytes.
    pub fn uvarint(&mut self, field: &'static str) -> WireResult<u32> {
        let mut value = 0u32;
        for shift in (0..35).step_by(7) {
            let byte = self.take(1, field)?[0];
            value |= u32::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        self.fail(field, Problem::Varint)
    }

    /// A string or bytes length prefix; `None` for null. Checked against what remains.
    fn length(&mut self, field: &'static str, classic_i32: bool) -> WireResult<Option<usize>> {
        let start = self.pos;
        let len: i64 = if self.flexible {
            i64::from(self.uvarint(field)?) - 1
        } else if classic_i32 {
            i64::from(self.i32(field)?)
        } else {
            i64::from(self.i16(field)?)
        };
        match len {
            -1 => Ok(None),
            n if n < 0 => Err(WireError { field, at: start, problem: Problem::NegativeLength(n) }),
            n if n as u64 > self.left() as u64 => {
                self.fail(field, Problem::Truncated { need: n as u64, left: self.left() })
            }
            n => Ok(Some(n as usize)),
        }
    }

    /// A nullable string; its bytes' range.
    pub fn nullable_string(&mut self, field: &'static str) -> WireResult<Option<Range<usize>>> {
        let Some(n) = self.length(field, false)? else { return Ok(None) };
        let at = self.pos;
        self.pos += n;
        Ok(Some(at..at + n))
    }

    /// A string that must not be null; its bytes' range.
    pub fn string(&mut self, field: &'static str) -> WireResult<Range<usize>> {
        let at = self.pos;
        self.nullable_string(field)?.ok_or(WireError { field, at, problem: Problem::Null })
    }

    /// A string's text, checked to be UTF-8.
    pub fn text(&self, range: Range<usize>, field: &'static str) -> WireResult<&'a str> {
        std::str::from_utf8(&self.buf[range.clone()]).map_err(|_| WireError {
            field,
            at: range.start,
            problem: Problem::Utf8,
        })
    }

    /// Nullable bytes (records, for example), skipped.
    pub fn skip_nullable_bytes(&mut self, field: &'static str) -> WireResult<()> {
        self.nullable_bytes(field).map(|_| ())
    }

    /// Nullable bytes (records, for example); their range, `None` for null.
    pub fn nullable_bytes(&mut self, field: &'static str) -> WireResult<Option<Range<usize>>> {
        let Some(n) = self.length(field, true)? else { return Ok(None) };
        let at = self.pos;
        self.pos += n;
        Ok(Some(at..at + n))
    }

    /// An array length; `None` for null. Each element takes at least `min_element` bytes, so a count the
    /// remaining bytes cannot hold is refused before any element is read.
    pub fn nullable_count(&mut self, field: &'static str, min_element: usize) -> WireResult<Option<usize>> {
        let start = self.pos;
        let count: i64 =
            if self.flexible { i64::from(self.uvarint(field)?) - 1 } else { i64::from(self.i32(field)?) };
        match count {
            -1 => Ok(None),
            n if n < 0 => Err(WireError { field, at: start, problem: Problem::NegativeLength(n) }),
            n if (n as u64).saturating_mul(min_element.max(1) as u64) > self.left() as u64 => {
                self.fail(field, Problem::CountTooLarge { count: n as u64, left: self.left() })
            }
            n => Ok(Some(n as usize)),
        }
    }

    /// An array that must not be null: calls `each` once per element.
    pub fn each(
        &mut self,
        field: &'static str,
        min_element: usize,
        mut each: impl FnMut(&mut Self) -> WireResult<()>,
    ) -> WireResult<()> {
        let at = self.pos;
        let n = self.nullable_count(field, min_element)?.ok_or(WireError {
            field,
            at,
            problem: Problem::Null,
        })?;
        (0..n).try_for_each(|_| each(self))
    }

    /// A nullable array: calls `each` once per element (not at all for null).
    pub fn each_nullable(
        &mut self,
        field: &'static str,
        min_element: usize,
        mut each: impl FnMut(&mut Self) -> WireResult<()>,
    ) -> WireResult<()> {
        let n = self.nullable_count(field, min_element)?.unwrap_or(0);
        (0..n).try_for_each(|_| each(self))
    }

    /// An array of fixed-size elements, skipped.
    pub fn skip_array(&mut self, field: &'static str, element: usize) -> WireResult<()> {
        let n = self.nullable_count(field, element)?.unwrap_or(0);
        self.skip(n * element, field)
    }

    /// A tagged-field section (flexible versions only; nothing otherwise). `known` is offered each field: its
    /// tag, where its size varint sits, and a reader limited to its payload; it returns false to skip the field
    /// unread. A field it reads must be read to its end.
    pub fn tagged_fields(
        &mut self,
        field: &'static str,
        mut known: impl FnMut(u32, Range<usize>, &mut Reader<'a>) -> WireResult<bool>,
    ) -> WireResult<()> {
        if !self.flexible {
            return Ok(());
        }
        let count = self.uvarint(field)?;
        // Each tagged field takes at least two bytes (tag and size).
        if u64::from(count) * 2 > self.left() as u64 {
            return self.fail(field, Problem::CountTooLarge { count: u64::from(count), left: self.left() });
        }
        for _ in 0..count {
            let tag = self.uvarint(field)?;
            let size_at = self.pos;
            let size = self.uvarint(field)? as usize;
            if size > self.left() {
                return self.fail(field, Problem::Truncated { need: size as u64, left: self.left() });
            }
            let mut payload = Reader { buf: self.buf, pos: self.pos, end: self.pos + size, flexible: true };
            if known(tag, size_at..payload.pos, &mut payload)? {
                payload.finish(field)?;
            }
            self.pos += size;
        }
        Ok(())
    }

    /// Tagged fields none of which the walker needs.
    pub fn skip_tagged_fields(&mut self, field: &'static str) -> WireResult<()> {
        self.tagged_fields(field, |_, _, _| Ok(false))
    }

    /// The reader must be at its end: bytes left over mean the walk misread the message.
    pub fn finish(&self, field: &'static str) -> WireResult<()> {
        match self.left() {
            0 => Ok(()),
            n => self.fail(field, Problem::Trailing(n)),
        }
    }
}

/// What replaces a range of the original bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Splice {
    /// These bytes.
    Bytes(Vec<u8>),
    /// The unsigned-varint size of a tagged field whose payload is `payload`, recomputed after the edits
    /// inside it.
    SizeOf {
        /// The payload's range in the original bytes.
        payload: Range<usize>,
    },
}

/// Replacements of byte ranges of one buffer. Ranges never overlap.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Edits {
    list: Vec<(Range<usize>, Splice)>,
}

impl Edits {
    /// Whether nothing is to change: the original bytes can be sent as they are.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Replaces the bytes at `at` (empty `with` deletes them).
    pub fn replace(&mut self, at: Range<usize>, with: Vec<u8>) {
        self.list.push((at, Splice::Bytes(with)));
    }

    /// Rewrites the size varint at `size_field` to the length `payload` has after the edits inside it.
    pub fn resize(&mut self, size_field: Range<usize>, payload: Range<usize>) {
        self.list.push((size_field, Splice::SizeOf { payload }));
    }

    /// How many edits are recorded.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Turns every `SizeOf` into bytes, innermost first, and sorts the edits by position.
    fn resolve(&mut self) {
        self.list.sort_by_key(|(at, _)| at.start);
        for i in (0..self.list.len()).rev() {
            let Splice::SizeOf { payload } = &self.list[i].1 else { continue };
            let inside: isize = self
                .list
                .iter()
                .filter(|(at, _)| at.start >= payload.start && at.end <= payload.end)
                .map(|(at, with)| match with {
                    Splice::Bytes(b) => b.len() as isize - at.len() as isize,
                    Splice::SizeOf { .. } => 0,
                })
                .sum();
            let size = (payload.len() as isize + inside).max(0) as u32;
            self.list[i].1 = Splice::Bytes(uvarint(size));
        }
    }

    /// Appends `src` with the edits applied to `out`; returns where the bytes that were not edited moved to.
    pub fn apply(mut self, src: &[u8], out: &mut BytesMut) -> Shifts {
        self.resolve();
        let grown: usize = self
            .list
            .iter()
            .map(|(_, s)| match s {
                Splice::Bytes(b) => b.len(),
                Splice::SizeOf { .. } => 0,
            })
            .sum();
        out.reserve(src.len() + grown);
        let mut copied = 0;
        let mut shift = 0isize;
        let mut ends = Vec::with_capacity(self.list.len());
        for (at, with) in &self.list {
            out.put_slice(&src[copied..at.start]);
            let written = match with {
                Splice::Bytes(b) => {
                    out.put_slice(b);
                    b.len()
                }
                Splice::SizeOf { .. } => 0,
            };
            shift += written as isize - at.len() as isize;
            ends.push((at.end, shift));
            copied = at.end;
        }
        out.put_slice(&src[copied..]);
        Shifts { ends }
    }

    /// Drops the last edit recorded: for tests that need a rewrite with a bug in it.
    #[cfg(test)]
    pub(crate) fn drop_last(&mut self) {
        self.list.pop();
    }
}

/// Where the bytes of the source of an [`Edits::apply`] are in its output.
#[derive(Debug, Default, Clone)]
pub struct Shifts {
    /// The end of each edit in the source, in order, and the total change in length up to it.
    ends: Vec<(usize, isize)>,
}

impl Shifts {
    /// The output offset of source offset `at`, which is the start of an edit or of unedited bytes.
    pub fn at(&self, at: usize) -> usize {
        let before = self.ends.partition_point(|(end, _)| *end <= at);
        let shift = before.checked_sub(1).map_or(0, |i| self.ends[i].1);
        at.saturating_add_signed(shift)
    }
}

/// Kafka's unsigned varint.
pub fn uvarint(mut v: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(5);
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out
}

/// A string in the encoding of `flexible` (compact: varint length + 1; classic: i16 length).
pub fn put_string(out: &mut Vec<u8>, s: &str, flexible: bool) {
    if flexible {
        out.extend_from_slice(&uvarint(s.len() as u32 + 1));
    } else {
        out.extend_from_slice(&(s.len() as i16).to_be_bytes());
    }
    out.extend_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_and_counts_are_checked_before_reading() {
        // Classic string claiming 0x7fff bytes with 2 present.
        let mut r = Reader::new(&[0x7f, 0xff, b'a', b'b'], false);
        let e = r.string("host").expect_err("too long");
        assert_eq!(e.problem, Problem::Truncated { need: 0x7fff, left: 2 });
        assert_eq!(e.to_string(), "host: needs 32767 bytes, 2 remain (at byte 2)");
        // Array count of i32::MAX with 4 bytes left, each element at least 10.
        let mut r = Reader::new(&[0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0], false);
        assert!(matches!(
            r.nullable_count("brokers", 10),
            Err(WireError { problem: Problem::CountTooLarge { count: 0x7fff_ffff, left: 4 }, .. })
        ));
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xfe], false);
        assert_eq!(r.nullable_count("topics", 1).expect_err("negative").problem, Problem::NegativeLength(-2));
        let mut r = Reader::new(&[0xff, 0xff], false);
        assert_eq!(r.string("host").expect_err("null").problem, Problem::Null);
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01], true);
        assert_eq!(r.uvarint("n").expect_err("too long").problem, Problem::Varint);
    }

    #[test]
    fn tagged_fields_are_bounded_and_read_exactly() {
        // One field, tag 0, size 3, payload [1, 2, 3], then one byte after the section.
        let bytes = [1, 0, 3, 1, 2, 3, 9];
        let mut r = Reader::new(&bytes, true);
        let mut seen = Vec::new();
        r.tagged_fields("tags", |tag, size_at, p| {
            assert_eq!(size_at, 2..3);
            seen.push((tag, p.pos()));
            p.skip(3, "payload")?;
            Ok(true)
        })
        .expect("valid");
        assert_eq!((seen, r.pos()), (vec![(0, 3)], 6));
        // A handler that stops short of the payload's end is an error, not a silent misread.
        let mut r = Reader::new(&bytes, true);
        let e = r.tagged_fields("tags", |_, _, p| p.skip(1, "payload").map(|_| true)).expect_err("short");
        assert_eq!(e.problem, Problem::Trailing(2));
        // A size past the end, and a count the bytes cannot hold.
        assert!(Reader::new(&[1, 0, 9, 1], true).skip_tagged_fields("tags").is_err());
        assert!(Reader::new(&[0x7f, 0, 0], true).skip_tagged_fields("tags").is_err());
    }

    #[test]
    fn edits_splice_and_resize() {
        // [size=4][a b c d] where "bc" becomes "XYZW": the size becomes 6.
        let src = [4, b'a', b'b', b'c', b'd', b'!'];
        let mut e = Edits::default();
        e.replace(2..4, b"XYZW".to_vec());
        e.resize(0..1, 1..5);
        let mut out = BytesMut::new();
        let shifts = e.apply(&src, &mut out);
        assert_eq!(&out[..], &[6, b'a', b'X', b'Y', b'Z', b'W', b'd', b'!']);
        // Where the source's bytes went: before the edits, at an edit, after it.
        assert_eq!([0, 1, 2, 4, 5].map(|at| shifts.at(at)), [0, 1, 2, 6, 7]);
        assert_eq!(uvarint(300), vec![0xac, 0x02]);
    }
}
