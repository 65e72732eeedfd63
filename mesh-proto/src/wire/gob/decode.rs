//! Streams and values: the decoder a caller drives. Values are decoded by callbacks on
//! borrowed [`Field`]s, and whatever a callback leaves alone is skipped without allocating.

use super::types::read_definition;
use super::{
    BOOL, BYTES, COMPLEX, FIRST_USER_ID, FLOAT, GobError, GobLimits, INT, INTERFACE, Reader, Result, STRING,
    Types, UINT, WireType,
};

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

    /// How many bytes of the input are still unread.
    pub fn remaining(&self) -> usize {
        self.r.remaining()
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
    /// The bytes of this value's message after its type id.
    pub fn body_len(&self) -> usize {
        self.r.remaining()
    }

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
            let (name, ty) = next_field(fields, &mut current, delta)?;
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

/// The field that the delta-encoded field number `delta` after `current` names; moves
/// `current` to it.
fn next_field<'f, T>(fields: &'f [T], current: &mut i64, delta: u64) -> Result<&'f T> {
    let next = *current as i128 + delta as i128;
    let Some(f) = usize::try_from(next).ok().and_then(|i| fields.get(i)) else {
        return Err(GobError::BadField {
            field: next.clamp(0, u64::MAX as i128) as u64,
            count: fields.len(),
        });
    };
    *current = next as i64;
    Ok(f)
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
                    let (_, fty) = next_field(fields, &mut current, delta)?;
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
    use crate::wire::gob::{put_int, put_map_definition, put_message, put_slice_definition, put_uint};

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
