//! The subset of Go's gob format that protocol version 2 uses (docs/protocol-v2.md §12).
//!
//! A gob *stream* is a sequence of length-prefixed *messages*; each message either
//! defines a type (negative id) or carries one value of a type (positive id). Type ids
//! are scoped to one stream and must never be hard-coded: Go hands them out per process
//! (docs/protocol-v2.md §12.8), so the decoder maps ids to shapes as definitions arrive.
//!
//! Decoding borrows from the input and never copies strings or byte slices. Every length
//! and count is checked against the bytes that remain before it is used (each gob value
//! occupies at least one byte, so a count can never exceed what is left), nesting and the
//! number of definitions are bounded by [`GobLimits`], a struct definition has at most 64
//! fields, and values of unknown fields are skipped without allocating.
//!
//! Encoding writes exactly what Go writes: minimal integers, zero struct fields omitted,
//! definitions in their own messages.
//!
//! Everything public lives directly in this module; the files below only divide the work:
//! `encode` writes, `reader` reads primitives, `types` reads type definitions and `decode`
//! walks streams and values.

mod decode;
mod encode;
mod reader;
mod types;

pub use decode::{Field, Scalar, Stream, Value};
pub use encode::{
    StructWriter, int_to_uint, put_bool, put_bytes, put_int, put_map_definition, put_message,
    put_slice_definition, put_struct_definition, put_top_bytes, put_top_bytes_with, put_top_int,
    put_top_string, put_top_uint, put_uint, uint_len,
};
pub use reader::Reader;
pub use types::{Types, WireType};

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

// wireType field numbers, shared by the definitions the encoder writes and the reader of
// definitions, so the two cannot drift apart.
const WT_ARRAY: u64 = 0;
const WT_SLICE: u64 = 1;
const WT_STRUCT: u64 = 2;
const WT_MAP: u64 = 3;
const WT_GOB_ENCODER: u64 = 4;
const WT_TEXT_MARSHALER: u64 = 6;

/// Why a gob stream could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
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
