//! The postcard encoding of a key, written into a stack buffer byte by byte.
//!
//! Key groups are computed for every record on hash edges and keyed operators, and keys are
//! small; postcard's own writer copies each varint with a `memcpy` call, which was a sixth of
//! a keyed pipeline's time. This serializer emits exactly postcard's bytes (the tests compare
//! the two on many shapes), so the stable hash is unchanged; a key that does not fit the
//! buffer, or a shape it does not handle, falls back to postcard itself.

use serde::ser::{self, Serialize};

/// A fixed buffer and how much of it is written.
pub(crate) struct KeyEncoder<'a> {
    buf: &'a mut [u8],
    len: usize,
}

/// The key did not fit (or cannot be encoded this way): use postcard.
#[derive(Debug)]
pub(crate) struct Overflow;

impl std::fmt::Display for Overflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("key does not fit the stack buffer")
    }
}

impl std::error::Error for Overflow {}

impl ser::Error for Overflow {
    fn custom<T: std::fmt::Display>(_msg: T) -> Self {
        Overflow
    }
}

type R = Result<(), Overflow>;

impl<'a> KeyEncoder<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        KeyEncoder { buf, len: 0 }
    }

    pub(crate) fn written(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    #[inline(always)]
    fn byte(&mut self, b: u8) -> R {
        let slot = self.buf.get_mut(self.len).ok_or(Overflow)?;
        *slot = b;
        self.len += 1;
        Ok(())
    }

    #[inline(always)]
    fn varint(&mut self, mut v: u128) -> R {
        loop {
            if v < 0x80 {
                return self.byte(v as u8);
            }
            self.byte((v as u8) | 0x80)?;
            v >>= 7;
        }
    }

    #[inline(always)]
    fn bytes(&mut self, bytes: &[u8]) -> R {
        let end = self.len + bytes.len();
        let dest = self.buf.get_mut(self.len..end).ok_or(Overflow)?;
        // Short keys (the common case) copy in a loop the compiler keeps inline.
        for (d, s) in dest.iter_mut().zip(bytes) {
            *d = *s;
        }
        self.len = end;
        Ok(())
    }

    #[inline(always)]
    fn zigzag(v: i128) -> u128 {
        ((v << 1) ^ (v >> 127)) as u128
    }
}

impl ser::Serializer for &mut KeyEncoder<'_> {
    type Ok = ();
    type Error = Overflow;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn serialize_bool(self, v: bool) -> R {
        self.byte(v as u8)
    }
    fn serialize_i8(self, v: i8) -> R {
        self.byte(v as u8)
    }
    fn serialize_i16(self, v: i16) -> R {
        self.varint(KeyEncoder::zigzag(v.into()))
    }
    fn serialize_i32(self, v: i32) -> R {
        self.varint(KeyEncoder::zigzag(v.into()))
    }
    fn serialize_i64(self, v: i64) -> R {
        self.varint(KeyEncoder::zigzag(v.into()))
    }
    fn serialize_i128(self, v: i128) -> R {
        self.varint(KeyEncoder::zigzag(v))
    }
    fn serialize_u8(self, v: u8) -> R {
        self.byte(v)
    }
    fn serialize_u16(self, v: u16) -> R {
        self.varint(v.into())
    }
    fn serialize_u32(self, v: u32) -> R {
        self.varint(v.into())
    }
    fn serialize_u64(self, v: u64) -> R {
        self.varint(v.into())
    }
    fn serialize_u128(self, v: u128) -> R {
        self.varint(v)
    }
    fn serialize_f32(self, v: f32) -> R {
        self.bytes(&v.to_bits().to_le_bytes())
    }
    fn serialize_f64(self, v: f64) -> R {
        self.bytes(&v.to_bits().to_le_bytes())
    }
    fn serialize_char(self, v: char) -> R {
        let mut tmp = [0u8; 4];
        self.serialize_str(v.encode_utf8(&mut tmp))
    }
    fn serialize_str(self, v: &str) -> R {
        self.varint(v.len() as u128)?;
        self.bytes(v.as_bytes())
    }
    fn serialize_bytes(self, v: &[u8]) -> R {
        self.varint(v.len() as u128)?;
        self.bytes(v)
    }
    fn serialize_none(self) -> R {
        self.byte(0)
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> R {
        self.byte(1)?;
        value.serialize(self)
    }
    fn serialize_unit(self) -> R {
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> R {
        Ok(())
    }
    fn serialize_unit_variant(self, _name: &'static str, index: u32, _variant: &'static str) -> R {
        self.varint(index.into())
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(self, _name: &'static str, value: &T) -> R {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        value: &T,
    ) -> R {
        self.varint(index.into())?;
        value.serialize(self)
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Self, Overflow> {
        // Postcard needs the length up front; without it, let postcard decide.
        self.varint(len.ok_or(Overflow)? as u128)?;
        Ok(self)
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self, Overflow> {
        Ok(self)
    }
    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Self, Overflow> {
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self, Overflow> {
        self.varint(index.into())?;
        Ok(self)
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Self, Overflow> {
        self.varint(len.ok_or(Overflow)? as u128)?;
        Ok(self)
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self, Overflow> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self, Overflow> {
        self.varint(index.into())?;
        Ok(self)
    }
    fn collect_str<T: ?Sized + std::fmt::Display>(self, _value: &T) -> R {
        // Postcard formats into a buffer of its own; leave such keys to it.
        Err(Overflow)
    }
    fn is_human_readable(&self) -> bool {
        false
    }
}

macro_rules! compound {
    ($trait:ident, $method:ident $(, $key:ident)?) => {
        impl ser::$trait for &mut KeyEncoder<'_> {
            type Ok = ();
            type Error = Overflow;
            fn $method<T: ?Sized + Serialize>(&mut self, $($key: &'static str,)? value: &T) -> R {
                $(let _ = $key;)?
                value.serialize(&mut **self)
            }
            fn end(self) -> R {
                Ok(())
            }
        }
    };
}

compound!(SerializeSeq, serialize_element);
compound!(SerializeTuple, serialize_element);
compound!(SerializeTupleStruct, serialize_field);
compound!(SerializeTupleVariant, serialize_field);
compound!(SerializeStruct, serialize_field, key);
compound!(SerializeStructVariant, serialize_field, key);

impl ser::SerializeMap for &mut KeyEncoder<'_> {
    type Ok = ();
    type Error = Overflow;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> R {
        key.serialize(&mut **self)
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> R {
        value.serialize(&mut **self)
    }
    fn end(self) -> R {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
