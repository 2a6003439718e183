//! Temporary raw codec with the final API; replaced by the codec branch.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ColumnHint {
    Timestamp,
    Numeric,
    Categorical,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} at byte {offset} of the chunk")]
pub(crate) struct CodecError {
    pub offset: usize,
    pub what: &'static str,
}

pub(crate) fn encode(values: &[i64], _hint: ColumnHint, out: &mut Vec<u8>) {
    out.push(0);
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

pub(crate) fn decode(input: &[u8], n: usize, out: &mut Vec<i64>) -> Result<usize, CodecError> {
    let need = n
        .checked_mul(8)
        .and_then(|x| x.checked_add(1))
        .ok_or(CodecError {
            offset: 0,
            what: "too long",
        })?;
    if input.len() < need || input.first() != Some(&0) {
        return Err(CodecError {
            offset: 0,
            what: "truncated",
        });
    }
    for c in input[1..need].chunks_exact(8) {
        out.push(i64::from_le_bytes(c.try_into().map_err(|_| {
            CodecError {
                offset: 0,
                what: "x",
            }
        })?));
    }
    Ok(need)
}
