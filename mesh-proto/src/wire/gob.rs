//! The subset of Go's gob format that protocol version 2 uses (wire.md §12).
//!
//! A gob *stream* is a sequence of length-prefixed *messages*; each message either
//! defines a type (negative id) or carries one value of a type (positive id). Type ids
//! are scoped to one stream and must never be hard-coded: Go hands them out per process
//! (wire.md §12.8), so the decoder maps ids to shapes as definitions arrive.
//!
//! Decoding borrows from the input and never copies strings or byte slices. Every length
//! and count is checked against the bytes that remain before it is used (each gob value
//! occupies at least one byte, so a count can never exceed what is left), nesting and the
//! number of definitions are bounded by [`GobLimits`], a struct definition has at most 64
//! fields, and values of unknown fields are skipped without allocating.
//!
//! Encoding writes exactly what Go writes: minimal integers, zero struct fields omitted,
//! definitions in their own messages.

use crate::config::GobLimits;

/// Built-in type id of `bool`.
pub const BOOL: i64 = 1;
/// Built-in type id of `int` (any signed integer).
pub const INT: i64 = 2;
/// Built-in type id of `uint` (any unsigned integer).
pub const UINT: i64 = 3;
/// Built-in type id of `float`.
pub const FLOAT: i64 = 4;
/// Built-in type id of `[]byte`.
pub const BYTES: i64 = 5;
/// Built-in type id of `string`.
pub const STRING: i64 = 6;
/// Built-in type id of `complex`.
pub const COMPLEX: i64 = 7;
/// Built-in type id of `interface`.
pub const INTERFACE: i64 = 8;
/// The first id Go gives to a user type.
pub const FIRST_USER_ID: i64 = 65;
/// The lowest id Go's decoder lets a stream define.
const MIN_DEFINABLE_ID: i64 = 64;
/// The most fields a struct definition may declare. The protocol's structs have at most
/// six; unbounded, a definition of one-byte unnamed fields would cost 32 bytes of field
/// table per input byte (a 10 MiB frame, 320 MiB).
const MAX_STRUCT_FIELDS: usize = 64;

/// Why a gob stream could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GobError {
    /// The input ended inside an item.
    #[error("gob input ends inside {0}")]
    Truncated(&'static str),
    /// A length or count exceeds the bytes left in its message.
    #[error("gob {what} of {len} exceeds the {remaining} bytes left")]
    TooLong {
        /// What the length or count was for.
        what: &'static str,
        /// The announced length or count.
        len: u64,
        /// Bytes actually left.
        remaining: usize,
    },
    /// An unsigned integer announced more than eight bytes.
    #[error("gob integer announces {0} bytes (at most 8)")]
    BadUint(u8),
    /// A value used a type id this stream has not defined.
    #[error("gob type id {0} is not defined in this stream")]
    UnknownType(i64),
    /// A type id was defined twice in one stream.
    #[error("gob type id {0} is defined twice")]
    Redefined(i64),
    /// A definition used an id that is reserved or negative.
    #[error("gob type id {0} cannot be defined (user ids start at 64)")]
    BadDefinitionId(i64),
    /// More definitions than [`GobLimits::max_types`].
    #[error("gob stream defines more than {0} types")]
    TooManyTypes(usize),
    /// Nesting deeper than [`GobLimits::max_depth`].
    #[error("gob value nests deeper than {0} levels")]
    TooDeep(usize),
    /// A type definition is malformed.
    #[error("malformed gob type definition: {0}")]
    BadDefinition(&'static str),
    /// A value's type is not the one the protocol expects here.
    #[error("gob value has type {found}, expected {expected}")]
    TypeMismatch {
        /// What the protocol expects.
        expected: &'static str,
        /// The wire type id found.
        found: i64,
    },
    /// A message has bytes left after its value.
    #[error("gob message has {0} bytes after its value")]
    TrailingBytes(usize),
    /// A struct field number is past the end of the struct's definition.
    #[error("gob struct field {field} does not exist (the type has {count} fields)")]
    BadField {
        /// The field number reached.
        field: u64,
        /// Fields in the definition.
        count: usize,
    },
    /// A non-struct top-level value lacks the `00` that precedes it.
    #[error("gob top-level value lacks its 00 marker")]
    MissingMarker,
    /// A message body is empty or its type id is zero.
    #[error("gob message has no type id")]
    NoTypeId,
    /// The stream uses a gob feature the protocol never needs.
    #[error("unsupported gob feature: {0}")]
    Unsupported(&'static str),
}

type Result<T> = core::result::Result<T, GobError>;

// ---------------------------------------------------------------------------------------
// Primitive encoding

/// Number of bytes `put_uint` writes for `v`.
pub fn uint_len(v: u64) -> usize {
    if v < 0x80 { 1 } else { 1 + (8 - v.leading_zeros() as usize / 8) }
}

/// Appends an unsigned integer in gob's minimal encoding.
pub fn put_uint(out: &mut Vec<u8>, v: u64) {
    if v < 0x80 {
        out.push(v as u8);
    } else {
        let n = 8 - v.leading_zeros() as usize / 8;
        out.push((256 - n) as u8);
        out.extend_from_slice(&v.to_be_bytes()[8 - n..]);
    }
}

/// Maps a signed integer onto gob's unsigned form.
pub fn int_to_uint(i: i64) -> u64 {
    if i < 0 { ((!i as u64) << 1) | 1 } else { (i as u64) << 1 }
}

/// Appends a signed integer.
pub fn put_int(out: &mut Vec<u8>, i: i64) {
    put_uint(out, int_to_uint(i));
}

/// Appends a bool.
pub fn put_bool(out: &mut Vec<u8>, b: bool) {
    out.push(b as u8);
}

/// Appends a string or byte slice: length, then the bytes.
pub fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_uint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Appends one message whose body `body` writes, prefixed by the body's length.
pub fn put_message(out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    // Write the body after room for the longest prefix, then slide it down once.
    const MAX_PREFIX: usize = 9;
    let start = out.len();
    out.resize(start + MAX_PREFIX, 0);
    body(out);
    let len = (out.len() - start - MAX_PREFIX) as u64;
    let mut prefix = Vec::with_capacity(MAX_PREFIX);
    put_uint(&mut prefix, len);
    let n = prefix.len();
    out[start..start + n].copy_from_slice(&prefix);
    out.copy_within(start + MAX_PREFIX.., start + n);
    out.truncate(out.len() - (MAX_PREFIX - n));
}

/// Appends a top-level value of a built-in scalar kind whose encoding is `n` bytes
/// produced by `value`; the length is computed up front so nothing moves.
fn put_top_scalar(out: &mut Vec<u8>, type_id: i64, encoded_len: usize, value: impl FnOnce(&mut Vec<u8>)) {
    // body = type id (1 byte for built-ins) + 00 marker + value
    put_uint(out, (2 + encoded_len) as u64);
    put_int(out, type_id);
    out.push(0);
    value(out);
}

/// Appends a top-level `uint` message.
pub fn put_top_uint(out: &mut Vec<u8>, v: u64) {
    put_top_scalar(out, UINT, uint_len(v), |o| put_uint(o, v));
}

/// Appends a top-level `int` message.
pub fn put_top_int(out: &mut Vec<u8>, v: i64) {
    let u = int_to_uint(v);
    put_top_scalar(out, INT, uint_len(u), |o| put_uint(o, u));
}

/// Appends a top-level `string` message.
pub fn put_top_string(out: &mut Vec<u8>, s: &[u8]) {
    put_top_scalar(out, STRING, uint_len(s.len() as u64) + s.len(), |o| put_bytes(o, s));
}

/// Appends a top-level `[]byte` message.
pub fn put_top_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_top_scalar(out, BYTES, uint_len(b.len() as u64) + b.len(), |o| put_bytes(o, b));
}

/// Appends a top-level `[]byte` message of exactly `len` bytes that `write` appends in
/// place, so a large payload is not built elsewhere and copied. Returns false (and
/// leaves `out` as it was) if `write` appended a different number of bytes.
pub fn put_top_bytes_with(out: &mut Vec<u8>, len: usize, write: impl FnOnce(&mut Vec<u8>)) -> bool {
    let start = out.len();
    let mut body_at = 0;
    put_top_scalar(out, BYTES, uint_len(len as u64) + len, |o| {
        put_uint(o, len as u64);
        body_at = o.len();
        write(o);
    });
    if out.len() - body_at != len {
        out.truncate(start);
        return false;
    }
    true
}

/// Writes the fields of a struct value in increasing order, omitting zero values.
pub struct StructWriter<'o> {
    out: &'o mut Vec<u8>,
    last: i64,
}

impl<'o> StructWriter<'o> {
    /// Starts a struct encoding at the end of `out`.
    pub fn new(out: &'o mut Vec<u8>) -> Self {
        StructWriter { out, last: -1 }
    }

    fn delta(&mut self, field: i64) {
        debug_assert!(field > self.last, "struct fields must be written in order");
        put_uint(self.out, (field - self.last) as u64);
        self.last = field;
    }

    /// Field `field` as a uint; omitted when zero.
    pub fn uint(&mut self, field: i64, v: u64) -> &mut Self {
        if v != 0 {
            self.delta(field);
            put_uint(self.out, v);
        }
        self
    }

    /// Field `field` as an int; omitted when zero.
    pub fn int(&mut self, field: i64, v: i64) -> &mut Self {
        if v != 0 {
            self.delta(field);
            put_int(self.out, v);
        }
        self
    }

    /// Field `field` as a bool; omitted when false.
    pub fn bool(&mut self, field: i64, v: bool) -> &mut Self {
        if v {
            self.delta(field);
            put_bool(self.out, v);
        }
        self
    }

    /// Field `field` as a string or byte slice; omitted when empty.
    pub fn bytes(&mut self, field: i64, v: &[u8]) -> &mut Self {
        if !v.is_empty() {
            self.delta(field);
            put_bytes(self.out, v);
        }
        self
    }

    /// Field `field` as a nested struct written by `body` (never omitted: the protocol's
    /// nested structs live in type definitions and are never empty).
    pub fn nested(&mut self, field: i64, body: impl FnOnce(&mut StructWriter<'_>)) -> &mut Self {
        self.delta(field);
        let mut inner = StructWriter::new(self.out);
        body(&mut inner);
        inner.end();
        self
    }

    /// Field `field` as a slice of nested structs; omitted when empty.
    pub fn struct_slice<T>(
        &mut self,
        field: i64,
        items: &[T],
        mut each: impl FnMut(&mut StructWriter<'_>, &T),
    ) -> &mut Self {
        if !items.is_empty() {
            self.delta(field);
            put_uint(self.out, items.len() as u64);
            for item in items {
                let mut inner = StructWriter::new(self.out);
                each(&mut inner, item);
                inner.end();
            }
        }
        self
    }

    /// Ends the struct.
    pub fn end(&mut self) {
        self.out.push(0);
    }
}

// wireType field numbers and the fields of the types inside it.
const WT_ARRAY: u64 = 0;
const WT_SLICE: u64 = 1;
const WT_STRUCT: u64 = 2;
const WT_MAP: u64 = 3;
const WT_GOB_ENCODER: u64 = 4;
const WT_TEXT_MARSHALER: u64 = 6;

fn common_type(w: &mut StructWriter<'_>, name: &[u8], id: i64) {
    w.bytes(0, name).int(1, id);
}

/// Appends the definition message of a map type.
pub fn put_map_definition(out: &mut Vec<u8>, id: i64, key: i64, elem: i64) {
    put_message(out, |o| {
        put_int(o, -id);
        StructWriter::new(o)
            .nested(WT_MAP as i64, |m| {
                m.nested(0, |c| common_type(c, b"", id)).int(1, key).int(2, elem);
            })
            .end();
    });
}

/// Appends the definition message of a slice type.
pub fn put_slice_definition(out: &mut Vec<u8>, id: i64, elem: i64) {
    put_message(out, |o| {
        put_int(o, -id);
        StructWriter::new(o)
            .nested(WT_SLICE as i64, |s| {
                s.nested(0, |c| common_type(c, b"", id)).int(1, elem);
            })
            .end();
    });
}

/// Appends the definition message of a struct type named `name` with `fields`
/// (field name, field type id) in declaration order.
pub fn put_struct_definition(out: &mut Vec<u8>, id: i64, name: &str, fields: &[(&str, i64)]) {
    put_message(out, |o| {
        put_int(o, -id);
        StructWriter::new(o)
            .nested(WT_STRUCT as i64, |s| {
                s.nested(0, |c| common_type(c, name.as_bytes(), id)).struct_slice(
                    1,
                    fields,
                    |f, (fname, fid)| {
                        f.bytes(0, fname.as_bytes()).int(1, *fid);
                    },
                );
            })
            .end();
    });
}

// ---------------------------------------------------------------------------------------
// Primitive decoding

/// A cursor over bytes with gob's primitive readers. Never reads past its end.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Whether everything has been read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    fn byte(&mut self, what: &'static str) -> Result<u8> {
        let b = *self.buf.get(self.pos).ok_or(GobError::Truncated(what))?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(GobError::Truncated(what));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Reads an unsigned integer.
    pub fn uint(&mut self) -> Result<u64> {
        let b = self.byte("an unsigned integer")?;
        if b < 0x80 {
            return Ok(b as u64);
        }
        let n = (b as i8).unsigned_abs();
        if n > 8 {
            return Err(GobError::BadUint(n));
        }
        let bytes = self.take(n as usize, "an unsigned integer")?;
        Ok(bytes.iter().fold(0u64, |v, &b| (v << 8) | b as u64))
    }

    /// Reads a signed integer.
    pub fn int(&mut self) -> Result<i64> {
        let u = self.uint()?;
        Ok(if u & 1 == 1 { !(u >> 1) as i64 } else { (u >> 1) as i64 })
    }

    /// Reads a bool (any non-zero value is true, as in Go).
    pub fn bool(&mut self) -> Result<bool> {
        Ok(self.uint()? != 0)
    }

    /// Reads a length-prefixed string or byte slice, borrowed from the input.
    pub fn bytes(&mut self) -> Result<&'a [u8]> {
        let len = self.uint()?;
        self.check_len("string or byte slice", len)?;
        self.take(len as usize, "a string or byte slice")
    }

    /// Reads a count of items that each occupy at least one byte.
    fn count(&mut self, what: &'static str) -> Result<usize> {
        let n = self.uint()?;
        self.check_len(what, n)?;
        Ok(n as usize)
    }

    fn check_len(&self, what: &'static str, len: u64) -> Result<()> {
        if len > self.remaining() as u64 {
            return Err(GobError::TooLong { what, len, remaining: self.remaining() });
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Type definitions

/// The shape of a user type, as a stream defined it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WireType {
    /// A fixed-length array.
    Array {
        /// Element type id.
        elem: i64,
        /// Declared length.
        len: i64,
    },
    /// A slice.
    Slice {
        /// Element type id.
        elem: i64,
    },
    /// A struct; fields in declaration order as (name, type id).
    Struct {
        /// Fields in declaration order.
        fields: Vec<(Vec<u8>, i64)>,
    },
    /// A map.
    Map {
        /// Key type id.
        key: i64,
        /// Element type id.
        elem: i64,
    },
    /// A type with its own marshalling (GobEncoder and friends): opaque bytes.
    Opaque,
}

/// The type definitions seen so far in one stream.
#[derive(Clone, Debug, Default)]
pub struct Types {
    defs: Vec<(i64, WireType)>,
}

impl Types {
    /// The shape of user type `id`, if defined.
    pub fn get(&self, id: i64) -> Option<&WireType> {
        self.defs.iter().find(|(i, _)| *i == id).map(|(_, t)| t)
    }

    fn define(&mut self, id: i64, ty: WireType, limits: &GobLimits) -> Result<()> {
        if id < MIN_DEFINABLE_ID {
            return Err(GobError::BadDefinitionId(id));
        }
        if self.get(id).is_some() {
            return Err(GobError::Redefined(id));
        }
        if self.defs.len() >= limits.max_types {
            return Err(GobError::TooManyTypes(limits.max_types));
        }
        self.defs.push((id, ty));
        Ok(())
    }
}

/// Reads the fields of a struct encoding, calling `field` with each field number; the
/// callback must consume the field's value.
fn read_fields<'a>(
    r: &mut Reader<'a>,
    max_field: u64,
    mut field: impl FnMut(&mut Reader<'a>, u64) -> Result<()>,
) -> Result<()> {
    let mut current: i64 = -1;
    loop {
        let delta = r.uint()?;
        if delta == 0 {
            return Ok(());
        }
        let next = (current as i128) + delta as i128;
        if next > max_field as i128 {
            return Err(GobError::BadDefinition("field number out of range"));
        }
        current = next as i64;
        field(r, current as u64)?;
    }
}

fn read_common_type(r: &mut Reader<'_>) -> Result<()> {
    read_fields(r, 1, |r, f| {
        match f {
            0 => {
                r.bytes()?;
            }
            _ => {
                r.int()?;
            }
        }
        Ok(())
    })
}

fn read_definition(r: &mut Reader<'_>) -> Result<WireType> {
    let mut found: Option<WireType> = None;
    read_fields(r, WT_TEXT_MARSHALER, |r, which| {
        if found.is_some() {
            return Err(GobError::BadDefinition("more than one kind of type"));
        }
        let ty = match which {
            WT_ARRAY => {
                let (mut elem, mut len) = (0, 0);
                read_fields(r, 2, |r, f| {
                    match f {
                        0 => read_common_type(r)?,
                        1 => elem = r.int()?,
                        _ => len = r.int()?,
                    }
                    Ok(())
                })?;
                WireType::Array { elem, len }
            }
            WT_SLICE => {
                let mut elem = 0;
                read_fields(r, 1, |r, f| {
                    match f {
                        0 => read_common_type(r)?,
                        _ => elem = r.int()?,
                    }
                    Ok(())
                })?;
                WireType::Slice { elem }
            }
            WT_STRUCT => {
                let mut fields = Vec::new();
                read_fields(r, 1, |r, f| {
                    match f {
                        0 => read_common_type(r)?,
                        _ => {
                            let n = r.count("struct field list")?;
                            if n > MAX_STRUCT_FIELDS {
                                return Err(GobError::BadDefinition("a struct of more than 64 fields"));
                            }
                            fields.reserve_exact(n);
                            for _ in 0..n {
                                let (mut name, mut id): (&[u8], i64) = (b"", 0);
                                read_fields(r, 1, |r, f| {
                                    match f {
                                        0 => name = r.bytes()?,
                                        _ => id = r.int()?,
                                    }
                                    Ok(())
                                })?;
                                fields.push((name.to_vec(), id));
                            }
                        }
                    }
                    Ok(())
                })?;
                WireType::Struct { fields }
            }
            WT_MAP => {
                let (mut key, mut elem) = (0, 0);
                read_fields(r, 2, |r, f| {
                    match f {
                        0 => read_common_type(r)?,
                        1 => key = r.int()?,
                        _ => elem = r.int()?,
                    }
                    Ok(())
                })?;
                WireType::Map { key, elem }
            }
            _ => {
                // GobEncoderT, BinaryMarshalerT, TextMarshalerT: only a CommonType.
                debug_assert!((WT_GOB_ENCODER..=WT_TEXT_MARSHALER).contains(&which));
                read_fields(r, 0, |r, _| read_common_type(r))?;
                WireType::Opaque
            }
        };
        found = Some(ty);
        Ok(())
    })?;
    found.ok_or(GobError::BadDefinition("no kind of type given"))
}

// ---------------------------------------------------------------------------------------
// Streams and values

/// A decoder over one gob stream. Definitions are absorbed as they come; [`Stream::next_value`]
/// yields value messages.
#[derive(Debug)]
pub struct Stream<'a> {
    r: Reader<'a>,
    types: Types,
    limits: GobLimits,
}

impl<'a> Stream<'a> {
    /// A stream over `input` with the default limits.
    pub fn new(input: &'a [u8]) -> Self {
        Self::with_limits(input, GobLimits::default())
    }

    /// A stream over `input` with explicit limits.
    pub fn with_limits(input: &'a [u8], limits: GobLimits) -> Self {
        Stream { r: Reader::new(input), types: Types::default(), limits }
    }

    /// Whether the whole input has been consumed.
    pub fn is_empty(&self) -> bool {
        self.r.is_empty()
    }

    /// The next value message, absorbing any definitions before it; `None` at the end.
    pub fn next_value(&mut self) -> Result<Option<Value<'_, 'a>>> {
        loop {
            if self.r.is_empty() {
                return Ok(None);
            }
            let len = self.r.uint()?;
            self.r.check_len("message", len)?;
            let mut body = Reader::new(self.r.take(len as usize, "a message")?);
            let id = body.int().map_err(|_| GobError::NoTypeId)?;
            if id == 0 {
                return Err(GobError::NoTypeId);
            }
            if id < 0 {
                let id = id.checked_neg().ok_or(GobError::BadDefinitionId(id))?;
                let ty = read_definition(&mut body)?;
                if !body.is_empty() {
                    return Err(GobError::TrailingBytes(body.remaining()));
                }
                self.types.define(id, ty, &self.limits)?;
                continue;
            }
            return Ok(Some(Value { types: &self.types, limits: self.limits, r: body, ty: id }));
        }
    }

    /// The next value message, which must exist.
    pub fn expect_next_value(&mut self, what: &'static str) -> Result<Value<'_, 'a>> {
        self.next_value()?.ok_or(GobError::Truncated(what))
    }
}

/// One top-level value message.
#[derive(Debug)]
pub struct Value<'t, 'a> {
    types: &'t Types,
    limits: GobLimits,
    r: Reader<'a>,
    ty: i64,
}

impl<'t, 'a> Value<'t, 'a> {
    /// The wire type id of this value.
    pub fn type_id(&self) -> i64 {
        self.ty
    }

    /// The shape of this value's type, if it is a user type.
    pub fn wire_type(&self) -> Option<&'t WireType> {
        self.types.get(self.ty)
    }

    /// Decodes the value with `f` and checks that nothing follows it in the message.
    pub fn decode<T>(mut self, f: impl FnOnce(&mut Field<'_, 't, 'a>) -> Result<T>) -> Result<T> {
        let is_struct = matches!(self.types.get(self.ty), Some(WireType::Struct { .. }));
        if !is_struct && self.r.byte("the top-level marker")? != 0 {
            return Err(GobError::MissingMarker);
        }
        let mut field = Field {
            types: self.types,
            limits: self.limits,
            r: &mut self.r,
            ty: self.ty,
            depth: 0,
            consumed: false,
        };
        let out = f(&mut field)?;
        field.finish()?;
        if !self.r.is_empty() {
            return Err(GobError::TrailingBytes(self.r.remaining()));
        }
        Ok(out)
    }

    /// A top-level `uint`.
    pub fn uint(self) -> Result<u64> {
        self.decode(|f| f.uint())
    }

    /// A top-level `int`.
    pub fn int(self) -> Result<i64> {
        self.decode(|f| f.int())
    }

    /// A top-level `string`, as bytes (Go does not check UTF-8).
    pub fn string(self) -> Result<&'a [u8]> {
        self.decode(|f| f.string())
    }

    /// A top-level `[]byte`.
    pub fn bytes(self) -> Result<&'a [u8]> {
        self.decode(|f| f.bytes())
    }
}

/// A scalar map key or element.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scalar<'a> {
    /// A bool.
    Bool(bool),
    /// A signed integer.
    Int(i64),
    /// An unsigned integer.
    Uint(u64),
    /// A float.
    Float(f64),
    /// A string (bytes, not checked for UTF-8).
    String(&'a [u8]),
    /// A byte slice.
    Bytes(&'a [u8]),
}

/// A value of a known type at the reader's position: a top-level value, a struct field,
/// a slice element or a map element. If the caller does not decode it, it is skipped.
#[derive(Debug)]
pub struct Field<'r, 't, 'a> {
    types: &'t Types,
    limits: GobLimits,
    r: &'r mut Reader<'a>,
    ty: i64,
    depth: usize,
    consumed: bool,
}

fn kind_name(ty: i64) -> &'static str {
    match ty {
        BOOL => "bool",
        INT => "int",
        UINT => "uint",
        FLOAT => "float",
        BYTES => "[]byte",
        STRING => "string",
        _ => "user type",
    }
}

impl<'r, 't, 'a> Field<'r, 't, 'a> {
    /// The wire type id of this value.
    pub fn type_id(&self) -> i64 {
        self.ty
    }

    fn expect(&mut self, ty: i64) -> Result<()> {
        if self.consumed {
            return Err(GobError::Unsupported("a value decoded twice"));
        }
        if self.ty != ty {
            return Err(GobError::TypeMismatch { expected: kind_name(ty), found: self.ty });
        }
        self.consumed = true;
        Ok(())
    }

    fn user_type(&mut self, expected: &'static str) -> Result<&'t WireType> {
        if self.consumed {
            return Err(GobError::Unsupported("a value decoded twice"));
        }
        self.consumed = true;
        self.types.get(self.ty).ok_or(if self.ty < FIRST_USER_ID - 1 {
            GobError::TypeMismatch { expected, found: self.ty }
        } else {
            GobError::UnknownType(self.ty)
        })
    }

    fn child(&mut self, ty: i64) -> Result<Field<'_, 't, 'a>> {
        let depth = self.depth + 1;
        if depth > self.limits.max_depth {
            return Err(GobError::TooDeep(self.limits.max_depth));
        }
        Ok(Field { types: self.types, limits: self.limits, r: self.r, ty, depth, consumed: false })
    }

    /// Decodes a `uint`.
    pub fn uint(&mut self) -> Result<u64> {
        self.expect(UINT)?;
        self.r.uint()
    }

    /// Decodes an `int`.
    pub fn int(&mut self) -> Result<i64> {
        self.expect(INT)?;
        self.r.int()
    }

    /// Decodes a `bool`.
    pub fn bool(&mut self) -> Result<bool> {
        self.expect(BOOL)?;
        self.r.bool()
    }

    /// Decodes a `string` as bytes.
    pub fn string(&mut self) -> Result<&'a [u8]> {
        self.expect(STRING)?;
        self.r.bytes()
    }

    /// Decodes a `[]byte`.
    pub fn bytes(&mut self) -> Result<&'a [u8]> {
        self.expect(BYTES)?;
        self.r.bytes()
    }

    /// Decodes any scalar.
    pub fn scalar(&mut self) -> Result<Scalar<'a>> {
        let s = match self.ty {
            BOOL => Scalar::Bool(self.bool()?),
            INT => Scalar::Int(self.int()?),
            UINT => Scalar::Uint(self.uint()?),
            FLOAT => {
                self.expect(FLOAT)?;
                Scalar::Float(f64::from_bits(self.r.uint()?.swap_bytes()))
            }
            STRING => Scalar::String(self.string()?),
            BYTES => Scalar::Bytes(self.bytes()?),
            found => {
                return Err(GobError::TypeMismatch { expected: "a scalar", found });
            }
        };
        Ok(s)
    }

    /// Decodes a map with scalar keys, calling `entry` with each key and a field for its
    /// element.
    pub fn map(
        &mut self,
        mut entry: impl FnMut(Scalar<'a>, &mut Field<'_, 't, 'a>) -> Result<()>,
    ) -> Result<()> {
        let WireType::Map { key, elem } = *self.user_type("a map")? else {
            return Err(GobError::TypeMismatch { expected: "a map", found: self.ty });
        };
        let n = self.r.count("map entry count")?;
        for _ in 0..n {
            let k = {
                let mut kf = self.child(key)?;
                let k = kf.scalar()?;
                kf.finish()?;
                k
            };
            let mut ef = self.child(elem)?;
            entry(k, &mut ef)?;
            ef.finish()?;
        }
        Ok(())
    }

    /// Decodes a slice (or array), calling `each` with a field for every element.
    pub fn slice(&mut self, mut each: impl FnMut(&mut Field<'_, 't, 'a>) -> Result<()>) -> Result<()> {
        let elem = match *self.user_type("a slice")? {
            WireType::Slice { elem } | WireType::Array { elem, .. } => elem,
            _ => {
                return Err(GobError::TypeMismatch { expected: "a slice", found: self.ty });
            }
        };
        let n = self.r.count("slice element count")?;
        for _ in 0..n {
            let mut ef = self.child(elem)?;
            each(&mut ef)?;
            ef.finish()?;
        }
        Ok(())
    }

    /// Decodes a struct, calling `field` with each present field's name and value. Fields
    /// the callback leaves alone are skipped, so unknown fields are harmless.
    pub fn structure(
        &mut self,
        mut field: impl FnMut(&[u8], &mut Field<'_, 't, 'a>) -> Result<()>,
    ) -> Result<()> {
        let WireType::Struct { fields } = self.user_type("a struct")? else {
            return Err(GobError::TypeMismatch { expected: "a struct", found: self.ty });
        };
        let mut current: i64 = -1;
        loop {
            let delta = self.r.uint()?;
            if delta == 0 {
                return Ok(());
            }
            let next = current as i128 + delta as i128;
            let Some((name, ty)) = usize::try_from(next).ok().and_then(|i| fields.get(i)) else {
                return Err(GobError::BadField {
                    field: next.clamp(0, u64::MAX as i128) as u64,
                    count: fields.len(),
                });
            };
            current = next as i64;
            let mut ff = self.child(*ty)?;
            field(name, &mut ff)?;
            ff.finish()?;
        }
    }

    /// Skips the value if nobody decoded it.
    fn finish(&mut self) -> Result<()> {
        if !self.consumed {
            self.consumed = true;
            skip(self.types, self.r, self.ty, self.depth, &self.limits)?;
        }
        Ok(())
    }
}

/// Skips one value of type `ty` without allocating.
fn skip(types: &Types, r: &mut Reader<'_>, ty: i64, depth: usize, limits: &GobLimits) -> Result<()> {
    if depth > limits.max_depth {
        return Err(GobError::TooDeep(limits.max_depth));
    }
    match ty {
        BOOL | INT | UINT | FLOAT => {
            r.uint()?;
        }
        BYTES | STRING => {
            r.bytes()?;
        }
        COMPLEX => {
            r.uint()?;
            r.uint()?;
        }
        INTERFACE => return Err(GobError::Unsupported("interface values")),
        _ => match types.get(ty).ok_or(GobError::UnknownType(ty))? {
            WireType::Array { elem, .. } | WireType::Slice { elem } => {
                let n = r.count("slice element count")?;
                for _ in 0..n {
                    skip(types, r, *elem, depth + 1, limits)?;
                }
            }
            WireType::Map { key, elem } => {
                let n = r.count("map entry count")?;
                for _ in 0..n {
                    skip(types, r, *key, depth + 1, limits)?;
                    skip(types, r, *elem, depth + 1, limits)?;
                }
            }
            WireType::Struct { fields } => {
                let mut current: i64 = -1;
                loop {
                    let delta = r.uint()?;
                    if delta == 0 {
                        break;
                    }
                    let next = current as i128 + delta as i128;
                    let Some((_, fty)) = usize::try_from(next).ok().and_then(|i| fields.get(i)) else {
                        return Err(GobError::BadField {
                            field: next.clamp(0, u64::MAX as i128) as u64,
                            count: fields.len(),
                        });
                    };
                    current = next as i64;
                    skip(types, r, *fty, depth + 1, limits)?;
                }
            }
            WireType::Opaque => {
                r.bytes()?;
            }
        },
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc_uint(v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        put_uint(&mut out, v);
        out
    }

    #[test]
    fn uint_encoding_boundaries() {
        assert_eq!(enc_uint(0), [0x00]);
        assert_eq!(enc_uint(127), [0x7f]);
        assert_eq!(enc_uint(128), [0xff, 0x80]);
        assert_eq!(enc_uint(256), [0xfe, 0x01, 0x00]);
        assert_eq!(enc_uint(u64::MAX), [0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        for v in [0, 1, 127, 128, 255, 256, 65535, 1 << 40, u64::MAX] {
            assert_eq!(uint_len(v), enc_uint(v).len());
            assert_eq!(Reader::new(&enc_uint(v)).uint().unwrap(), v);
        }
    }

    #[test]
    fn put_message_prefixes_long_bodies() {
        let mut out = vec![0xaa];
        put_message(&mut out, |o| o.extend(std::iter::repeat_n(7u8, 300)));
        assert_eq!(&out[..4], &[0xaa, 0xfe, 0x01, 0x2c]);
        assert_eq!(out.len(), 4 + 300);
    }

    #[test]
    fn map_definition_matches_go() {
        let mut out = Vec::new();
        put_map_definition(&mut out, 65, STRING, STRING);
        assert_eq!(hex::encode(out), "0eff81040102ff8200010c010c0000");
    }

    #[test]
    fn nested_too_deep_is_refused() {
        // A stream defining slice 65 of itself, then a value nested 40 levels deep.
        let mut s = Vec::new();
        put_slice_definition(&mut s, 65, 65);
        put_message(&mut s, |o| {
            put_int(o, 65);
            o.push(0);
            for _ in 0..40 {
                o.push(1);
            }
            o.push(0);
        });
        let mut st = Stream::new(&s);
        let v = st.next_value().unwrap().unwrap();
        assert_eq!(v.decode(|f| { f.finish() }), Err(GobError::TooDeep(16)));
    }

    #[test]
    fn counts_beyond_input_are_refused_before_allocating() {
        // map[string]string claiming 2^40 entries in a few bytes.
        let mut s = Vec::new();
        put_map_definition(&mut s, 65, STRING, STRING);
        put_message(&mut s, |o| {
            put_int(o, 65);
            o.push(0);
            put_uint(o, 1 << 40);
        });
        let mut st = Stream::new(&s);
        let v = st.next_value().unwrap().unwrap();
        let err = v.decode(|f| f.map(|_, _| Ok(()))).unwrap_err();
        assert!(matches!(err, GobError::TooLong { len, .. } if len == 1 << 40), "{err:?}");
    }
}
