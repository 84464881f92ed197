//! Floating-point numbers as proto3 JSON writes them: Go's protojson, the
//! marshaler grpc-gateway and connect-go answer with. A whole number has no
//! fraction (`10`, where serde_json writes `10.0`), a `float` field has the
//! shortest digits of its own width (`0.1`, not the `0.10000000149011612`
//! of the same value widened), and only a magnitude below 1e-6 or from
//! 1e21 up takes an exponent, always signed (`1e+21`, `1.5e-7`).
//!
//! NaN and the infinities are strings in proto3 JSON; whoever writes the
//! value writes those (prost-reflect and [`crate::response_json`] do), so
//! serde_json never hands one to the formatter.

use std::fmt::Display;
use std::io::{self, Write};

use serde::Serialize;

/// serde_json's compact output with proto3 JSON's numbers.
pub struct ProtoJsonNumbers;

impl serde_json::ser::Formatter for ProtoJsonNumbers {
    fn write_f32<W: ?Sized + Write>(&mut self, writer: &mut W, value: f32) -> io::Result<()> {
        write_f32(writer, value)
    }

    fn write_f64<W: ?Sized + Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        write_f64(writer, value)
    }
}

/// `value` as compact JSON with proto3 JSON's numbers.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(128);
    value.serialize(&mut serde_json::Serializer::with_formatter(&mut out, ProtoJsonNumbers))?;
    Ok(out)
}

/// A finite double.
pub fn write_f64<W: ?Sized + Write>(out: &mut W, x: f64) -> io::Result<()> {
    let magnitude = x.abs();
    write_shortest(out, x, magnitude != 0.0 && !(1e-6..1e21).contains(&magnitude))
}

/// A finite float, in the shortest digits that read back as the same float.
pub fn write_f32<W: ?Sized + Write>(out: &mut W, x: f32) -> io::Result<()> {
    let magnitude = x.abs();
    write_shortest(out, x, magnitude != 0.0 && !(1e-6..1e21).contains(&magnitude))
}

/// Rust's `Display` and `LowerExp` for floats already write the shortest
/// digits that read back as the same value, as Go's `strconv` does; they
/// differ from it only in leaving out the `+` of a positive exponent.
fn write_shortest<W, F>(out: &mut W, x: F, exponent: bool) -> io::Result<()>
where
    W: ?Sized + Write,
    F: Display + std::fmt::LowerExp,
{
    if !exponent {
        return write!(out, "{x}");
    }
    let text = format!("{x:e}");
    match text.split_once('e') {
        Some((digits, power)) if !power.starts_with('-') => write!(out, "{digits}e+{power}"),
        _ => out.write_all(text.as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f64_text(x: f64) -> String {
        let mut out = Vec::new();
        write_f64(&mut out, x).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn f32_text(x: f32) -> String {
        let mut out = Vec::new();
        write_f32(&mut out, x).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// What Go's protojson writes for each (encoding/protojson, through
    /// internal/encoding/json's appendFloat).
    #[test]
    fn doubles_read_as_protojson_writes_them() {
        let cases = [
            (10.0, "10"),
            (29.99, "29.99"),
            (-3.0, "-3"),
            (0.0, "0"),
            (-0.0, "-0"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e-6, "0.000001"),
            (1e-7, "1e-7"),
            (-1.5e-7, "-1.5e-7"),
            (1e20, "100000000000000000000"),
            (1e21, "1e+21"),
            (123456789.125, "123456789.125"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
        ];
        for (x, text) in cases {
            assert_eq!(f64_text(x), text, "{x:?}");
        }
    }

    #[test]
    fn floats_take_the_shortest_digits_of_their_own_width() {
        let cases = [
            (0.1_f32, "0.1"),
            (10.0, "10"),
            (16_777_216.0, "16777216"),
            (1e-7, "1e-7"),
            (f32::MAX, "3.4028235e+38"),
            (-2.5, "-2.5"),
        ];
        for (x, text) in cases {
            assert_eq!(f32_text(x), text, "{x:?}");
        }
    }

    #[test]
    fn the_formatter_writes_a_structure_with_these_numbers() {
        let value = serde_json::json!({"price": 10.0, "ratio": 0.5, "count": 3, "tiny": 1e-9});
        let text = String::from_utf8(to_vec(&value).unwrap()).unwrap();
        assert_eq!(text, r#"{"price":10,"ratio":0.5,"count":3,"tiny":1e-9}"#);
    }
}
