//! Type definitions: the shapes a stream gives its user types, and the reader of the
//! `wireType` messages that define them.
//!
//! A definition is itself a gob struct value; its field numbers are bounded at every level
//! so a hostile definition is refused before it can name a field that does not exist.

use super::{
    GobError, GobLimits, MAX_STRUCT_FIELDS, MIN_DEFINABLE_ID, Reader, Result, WT_ARRAY, WT_GOB_ENCODER,
    WT_MAP, WT_SLICE, WT_STRUCT, WT_TEXT_MARSHALER,
};

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

    /// Records the definition of `id`, refusing ids a stream may not define, a second
    /// definition of one id and more than `max_types` definitions.
    pub(super) fn define(&mut self, id: i64, ty: WireType, limits: &GobLimits) -> Result<()> {
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

/// `CommonType`: name and id, read and dropped (the message's own id is the one that counts).
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

/// Reads the body of a definition message: a `wireType`, a struct in which exactly one
/// field is set, and the number of that field says which kind of type it defines.
pub(super) fn read_definition(r: &mut Reader<'_>) -> Result<WireType> {
    let mut found: Option<WireType> = None;
    read_fields(r, WT_TEXT_MARSHALER, |r, which| {
        if found.is_some() {
            return Err(GobError::BadDefinition("more than one kind of type"));
        }
        let ty = match which {
            WT_ARRAY => read_array(r)?,
            WT_SLICE => read_slice(r)?,
            WT_STRUCT => read_struct(r)?,
            WT_MAP => read_map(r)?,
            _ => {
                // GobEncoderT, BinaryMarshalerT, TextMarshalerT: only a CommonType.
                debug_assert!((WT_GOB_ENCODER..=WT_TEXT_MARSHALER).contains(&which));
                read_opaque(r)?
            }
        };
        found = Some(ty);
        Ok(())
    })?;
    found.ok_or(GobError::BadDefinition("no kind of type given"))
}

/// `ArrayType`: CommonType, element type id, length.
fn read_array(r: &mut Reader<'_>) -> Result<WireType> {
    let (mut elem, mut len) = (0, 0);
    read_fields(r, 2, |r, f| {
        match f {
            0 => read_common_type(r)?,
            1 => elem = r.int()?,
            _ => len = r.int()?,
        }
        Ok(())
    })?;
    Ok(WireType::Array { elem, len })
}

/// `SliceType`: CommonType, element type id.
fn read_slice(r: &mut Reader<'_>) -> Result<WireType> {
    let mut elem = 0;
    read_fields(r, 1, |r, f| {
        match f {
            0 => read_common_type(r)?,
            _ => elem = r.int()?,
        }
        Ok(())
    })?;
    Ok(WireType::Slice { elem })
}

/// `StructType`: CommonType, list of fields.
fn read_struct(r: &mut Reader<'_>) -> Result<WireType> {
    let mut fields = Vec::new();
    read_fields(r, 1, |r, f| match f {
        0 => read_common_type(r),
        _ => read_field_list(r, &mut fields),
    })?;
    Ok(WireType::Struct { fields })
}

/// The `[]fieldType` of a struct definition, appended to `fields`. The count is bounded
/// before anything is reserved for it: see [`MAX_STRUCT_FIELDS`].
fn read_field_list(r: &mut Reader<'_>, fields: &mut Vec<(Vec<u8>, i64)>) -> Result<()> {
    let n = r.count("struct field list")?;
    if n > MAX_STRUCT_FIELDS {
        return Err(GobError::BadDefinition("a struct of more than 64 fields"));
    }
    fields.reserve_exact(n);
    for _ in 0..n {
        fields.push(read_field_type(r)?);
    }
    Ok(())
}

/// One `fieldType`: name, type id.
fn read_field_type(r: &mut Reader<'_>) -> Result<(Vec<u8>, i64)> {
    let (mut name, mut id): (&[u8], i64) = (b"", 0);
    read_fields(r, 1, |r, f| {
        match f {
            0 => name = r.bytes()?,
            _ => id = r.int()?,
        }
        Ok(())
    })?;
    Ok((name.to_vec(), id))
}

/// `MapType`: CommonType, key type id, element type id.
fn read_map(r: &mut Reader<'_>) -> Result<WireType> {
    let (mut key, mut elem) = (0, 0);
    read_fields(r, 2, |r, f| {
        match f {
            0 => read_common_type(r)?,
            1 => key = r.int()?,
            _ => elem = r.int()?,
        }
        Ok(())
    })?;
    Ok(WireType::Map { key, elem })
}

/// `GobEncoderType` and the marshaler types: only a CommonType; values are opaque bytes.
fn read_opaque(r: &mut Reader<'_>) -> Result<WireType> {
    read_fields(r, 0, |r, _| read_common_type(r))?;
    Ok(WireType::Opaque)
}
