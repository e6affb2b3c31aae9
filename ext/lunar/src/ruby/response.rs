//! Rack triple pieces (Ruby values) → a `Reply` of plain Rust data, on the Ruby thread.

use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, HeaderName, StatusCode};
use magnus::{r_hash::ForEach, value::ReprValue, Error, RArray, RHash, RString, Ruby, Symbol, TryConvert, Value};

use crate::ruby::headers::{append_lines, header_name, is_server_internal};
use crate::ruby::lent;

/// A Rack status as HTTP's: an Integer from 200 to 999 (or 100 to 199 where `informational`,
/// as a 101 handing the connection over). Anything else is the app's error, said as such,
/// rather than a 500 that carries the app's own headers and body.
pub fn status(ruby: &Ruby, status: i64, informational: bool) -> Result<StatusCode, Error> {
    let lowest = if informational { 100 } else { 200 };
    match u16::try_from(status).ok().filter(|s| (lowest..=999).contains(s)).map(StatusCode::from_u16) {
        Some(Ok(code)) => Ok(code),
        _ => Err(Error::new(ruby.exception_arg_error(), format!("status {status}: Rack needs an Integer from {lowest} to 999 for this response"))),
    }
}

fn to_rstring(ruby: &Ruby, v: Value) -> Result<RString, Error> {
    match RString::from_value(v) {
        Some(s) => Ok(s),
        None => {
            RString::try_convert(v.funcall::<_, _, Value>("to_s", ())?).map_err(|_| Error::new(ruby.exception_type_error(), "header name#to_s is not a String"))
        }
    }
}

fn bad_value(ruby: &Ruby, name: RString, value: Value) -> Error {
    let class = unsafe { value.classname() }.into_owned(); // SAFETY: `value` is a live Ruby value on this thread
                                                           // SAFETY: `name` is a live Ruby String on this thread's stack, read at once.
    let name = String::from_utf8_lossy(unsafe { name.as_slice() }).into_owned();
    Error::new(
        ruby.exception_type_error(),
        format!("response header {name:?}: a {class} value; Rack needs a String or an Array of Strings (numbers and Symbols are written as text)"),
    )
}

/// One Rack header, by Thin's rules (which Rack 2 apps were written against): a nil value
/// drops the header; a name already written (case-insensitively) is not written again,
/// except the four that may repeat; a String value with "\n" becomes one line per part; an
/// Array one line per element. A number or a Symbol is written as its text, as Puma writes
/// it (`"content-length" => body.bytesize` ran there); any other value is the app's error
/// (the response becomes a 500, logged) rather than a guess at its text (a Time's `to_s` is
/// no HTTP date). The name is checked and parsed once.
fn append_pair(ruby: &Ruby, map: &mut HeaderMap, key: Value, value: Value) -> Result<(), Error> {
    if value.is_nil() {
        return Ok(());
    }
    let key = to_rstring(ruby, key)?;
    // SAFETY: `key` is a live Ruby String on this thread's stack; `header_name` copies what
    // it keeps before any further Ruby call.
    // `rack.hijack` (a callable), other `rack.*` keys and `status` are not headers at all.
    let Some(name) = header_name(unsafe { key.as_slice() }) else {
        // SAFETY: as above.
        if !is_server_internal(unsafe { key.as_slice() }) {
            dropped(key, "its name is not a token");
        }
        return Ok(());
    };
    if already_written(map, &name) {
        return Ok(());
    }
    // SAFETY (both `as_slice`s): live Ruby Strings (on this thread's stack), their bytes
    // copied by `append_lines` before any further Ruby call.
    if let Some(list) = RArray::from_value(value) {
        for item in list.into_iter() {
            let item = value_text(ruby, key, item)?;
            if append_lines(map, &name, unsafe { item.as_slice() }) == 0 {
                dropped(key, "a value holds CR, NUL or another control character");
            }
        }
    } else {
        let value = value_text(ruby, key, value)?;
        if append_lines(map, &name, unsafe { value.as_slice() }) == 0 {
            dropped(key, "its value holds CR, NUL or another control character");
        }
    }
    Ok(())
}

/// Says which header the app's response lost, and why: a value with CR would split the
/// response, so it is never written, but the app's author should hear of it.
fn dropped(key: RString, why: &str) {
    // SAFETY: a live Ruby String on this thread's stack, copied at once.
    let name = String::from_utf8_lossy(unsafe { key.as_slice() }).into_owned();
    crate::log::warn(&format!("response header {name:?} not sent: {why}"));
}

/// A header value (or an Array's element) as text: a String as it is, a number or a Symbol
/// by `to_s`; anything else is the app's error.
fn value_text(ruby: &Ruby, key: RString, value: Value) -> Result<RString, Error> {
    if let Some(text) = RString::from_value(value) {
        return Ok(text);
    }
    if value.is_kind_of(ruby.class_numeric()) || Symbol::from_value(value).is_some() {
        return RString::try_convert(value.funcall::<_, _, Value>("to_s", ())?);
    }
    Err(bad_value(ruby, key, value))
}

/// Names that may appear more than once (Thin's list); any other is written once.
fn already_written(map: &HeaderMap, name: &HeaderName) -> bool {
    const REPEATABLE: [HeaderName; 4] = [header::SET_COOKIE, HeaderName::from_static("set-cookie2"), header::WARNING, header::WWW_AUTHENTICATE];
    map.contains_key(name) && !REPEATABLE.contains(name)
}

/// Rack headers (a Hash, or for Rack 2 an Array of pairs) → HTTP headers.
pub fn header_map(ruby: &Ruby, headers: Value) -> Result<HeaderMap, Error> {
    let mut map = HeaderMap::new();
    if let Some(hash) = RHash::from_value(headers) {
        hash.foreach(|k: Value, v: Value| {
            append_pair(ruby, &mut map, k, v)?;
            Ok(ForEach::Continue)
        })?;
    } else if let Some(pairs) = RArray::from_value(headers) {
        for pair in pairs.into_iter() {
            let (k, v): (Value, Value) = TryConvert::try_convert(pair)?;
            append_pair(ruby, &mut map, k, v)?;
        }
    } else if !headers.is_nil() {
        return Err(Error::new(ruby.exception_type_error(), "Rack headers must be a Hash"));
    }
    Ok(map)
}

/// A body chunk: a String as it is; anything else by its `to_s`, as Thin's EventMachine
/// `send_data` writes it (an Integer or a Symbol an old Thin app yields; nil writes nothing).
pub fn chunk_text(chunk: Value) -> Result<RString, Error> {
    match RString::from_value(chunk) {
        Some(s) => Ok(s),
        None => chunk.funcall("to_s", ()),
    }
}

/// A complete body as Ruby gives it: nil, a String, or an Array of chunks (`to_ary`).
pub enum WholeBody {
    None,
    One(RString),
    Parts(RArray),
}

impl WholeBody {
    pub fn of(ruby: &Ruby, body: Value) -> Result<WholeBody, Error> {
        if body.is_nil() {
            return Ok(WholeBody::None);
        }
        if let Some(s) = RString::from_value(body) {
            return Ok(WholeBody::One(s));
        }
        let parts = RArray::from_value(body).ok_or_else(|| Error::new(ruby.exception_type_error(), "body must be a String or an Array of Strings"))?;
        if parts.len() == 1 {
            return Ok(WholeBody::One(chunk_text(parts.entry::<Value>(0)?)?));
        }
        Ok(WholeBody::Parts(parts))
    }

    /// Its length in bytes, without copying it.
    pub fn len(&self) -> Result<usize, Error> {
        match self {
            WholeBody::None => Ok(0),
            WholeBody::One(s) => Ok(s.len()),
            WholeBody::Parts(parts) => parts.into_iter().try_fold(0, |sum, part| Ok(sum + chunk_text(part)?.len())),
        }
    }

    /// Out of Ruby (no Ruby object may cross to tokio) as one buffer: one large frozen
    /// String lent (see `lent`), anything else copied.
    pub fn to_bytes(&self, ruby: &Ruby) -> Result<Bytes, Error> {
        match self {
            WholeBody::None => Ok(Bytes::new()),
            WholeBody::One(s) => Ok(lent::chunk_bytes(ruby, *s)),
            WholeBody::Parts(parts) => {
                let mut buf = BytesMut::new();
                for part in parts.into_iter() {
                    let s = chunk_text(part)?;
                    // SAFETY: `s` is a live String reached from `parts`, copied before the next Ruby call.
                    buf.extend_from_slice(unsafe { s.as_slice() });
                }
                Ok(buf.freeze())
            }
        }
    }
}
