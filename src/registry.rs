//! The device registry: serial string to dense integer id, each device's attributes, and the
//! optional postcode table that derives region and segment from a postcode.
//!
//! Invariants: ids are dense (`0..len`), assigned in registration order and never reused, so
//! every other structure can index per-device state by id. Registration is logged in the
//! write-ahead log (so it is durable with the rows that need it) and the whole registry is
//! checkpointed to a `registry-NNNNNNNNNN.hreg` file at flush, named by the manifest.
//! Re-registering a serial keeps its id and replaces its attributes.
//!
//! Erasure: an erased device's slot stays (ids are never reused) but its serial is gone at
//! once; until the device's rows are purged from the segments the slot keeps the four
//! attributes its rollup cells are keyed by (model, capacity, region, segment: never the
//! serial, postcode, position or firmware), so its contribution can be taken back out of the
//! fleet rollups at every open. A purge clears those too.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, InputError, Result};
use crate::files::{self, varint};

/// A registered device and its attributes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// Serial number, e.g. `WM-00012345`.
    pub serial: String,
    /// Model name.
    pub model: String,
    /// Drum capacity in kg.
    pub capacity_kg: f64,
    /// Firmware version.
    pub firmware: String,
    /// Installation time, ms since the Unix epoch.
    pub installed_at: i64,
    /// Latitude in degrees.
    pub lat: f64,
    /// Longitude in degrees.
    pub lon: f64,
    /// Postcode (district).
    pub postcode: String,
    /// Region, derived from the postcode table when empty and one is loaded.
    pub region: String,
    /// Socio-economic segment (`A`..`O`), derived from the postcode table when empty and one
    /// is loaded.
    pub segment: String,
}

impl DeviceInfo {
    /// A device known only by its serial (used by auto-registration).
    pub fn unknown(serial: &str) -> Self {
        DeviceInfo {
            serial: serial.to_string(),
            model: String::new(),
            capacity_kg: 0.0,
            firmware: String::new(),
            installed_at: 0,
            lat: 0.0,
            lon: 0.0,
            postcode: String::new(),
            region: String::new(),
            segment: String::new(),
        }
    }

    /// Checks the serial and the numeric attributes.
    pub(crate) fn validate(&self) -> Result<(), InputError> {
        validate_serial(&self.serial)?;
        let bad = |attribute: &'static str, reason: String| InputError::InvalidDevice {
            serial: self.serial.clone(),
            attribute,
            reason,
        };
        if !self.capacity_kg.is_finite() || !(0.0..=100.0).contains(&self.capacity_kg) {
            return Err(bad(
                "capacity_kg",
                format!("{} is not in 0..=100", self.capacity_kg),
            ));
        }
        if !self.lat.is_finite() || !(-90.0..=90.0).contains(&self.lat) {
            return Err(bad("lat", format!("{} is not a latitude", self.lat)));
        }
        if !self.lon.is_finite() || !(-180.0..=180.0).contains(&self.lon) {
            return Err(bad("lon", format!("{} is not a longitude", self.lon)));
        }
        for (name, v) in [
            ("model", &self.model),
            ("firmware", &self.firmware),
            ("postcode", &self.postcode),
            ("region", &self.region),
            ("segment", &self.segment),
        ] {
            if v.len() > 256 || v.chars().any(char::is_control) {
                return Err(bad(
                    name,
                    "longer than 256 bytes or holds control characters".into(),
                ));
            }
        }
        Ok(())
    }
}

/// Checks a serial: 1..=64 bytes, no control characters or surrounding whitespace.
pub(crate) fn validate_serial(serial: &str) -> Result<(), InputError> {
    let reason = if serial.is_empty() {
        "empty"
    } else if serial.len() > 64 {
        "longer than 64 bytes"
    } else if serial.chars().any(char::is_control) {
        "holds control characters"
    } else if serial.trim() != serial {
        "has surrounding whitespace"
    } else {
        return Ok(());
    };
    Err(InputError::InvalidSerial {
        serial: serial.chars().take(80).collect(),
        reason,
    })
}

/// One row of the postcode table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostcodeEntry {
    /// Postcode (district), e.g. `SW1A`.
    pub postcode: String,
    /// Region it lies in.
    pub region: String,
    /// Socio-economic segment of the postcode.
    pub segment: String,
}

/// What a registry slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum SlotState {
    /// A registered device.
    #[default]
    Live,
    /// Erased; its rows may still be in segments (the slot keeps its rollup attributes).
    Erased,
    /// Erased and purged: nothing of it is left but the slot.
    Purged,
}

/// A serial as the key of the registry's index. Serials of up to [`SerialKey::INLINE`]
/// bytes (the preset's `WM-00012345` is 11) are stored in the hash table's entry itself, so
/// finding a device compares bytes already loaded with the entry instead of following a
/// pointer to a cold heap string (one cache miss less on every per-device question).
#[derive(Debug, Clone)]
enum SerialKey {
    Inline {
        len: u8,
        bytes: [u8; SerialKey::INLINE],
    },
    Heap(Arc<str>),
}

impl SerialKey {
    const INLINE: usize = 22;

    fn new(serial: &str) -> Self {
        let mut bytes = [0u8; Self::INLINE];
        match bytes.get_mut(..serial.len()) {
            Some(dst) => {
                dst.copy_from_slice(serial.as_bytes());
                SerialKey::Inline {
                    len: serial.len() as u8,
                    bytes,
                }
            }
            None => SerialKey::Heap(Arc::from(serial)),
        }
    }
}

impl std::borrow::Borrow<str> for SerialKey {
    fn borrow(&self) -> &str {
        match self {
            // Bytes copied from a `str` cut at its own length: always valid UTF-8.
            SerialKey::Inline { len, bytes } => bytes
                .get(..usize::from(*len))
                .and_then(|b| std::str::from_utf8(b).ok())
                .unwrap_or(""),
            SerialKey::Heap(s) => s,
        }
    }
}

impl PartialEq for SerialKey {
    fn eq(&self, other: &Self) -> bool {
        std::borrow::Borrow::<str>::borrow(self) == std::borrow::Borrow::<str>::borrow(other)
    }
}

impl Eq for SerialKey {}

impl std::hash::Hash for SerialKey {
    /// As the `str` it holds (lookups by `&str` rely on it).
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        std::borrow::Borrow::<str>::borrow(self).hash(h);
    }
}

/// The in-memory registry.
#[derive(Debug, Clone, Default)]
pub(crate) struct Registry {
    by_serial: HashMap<SerialKey, u32>,
    devices: Vec<DeviceInfo>,
    /// Per id; `Live` for every id past its end.
    states: Vec<SlotState>,
    postcodes: HashMap<String, (String, String)>,
}

/// Version of the registry payload: 2 added the per-slot state (erased devices); version 1
/// files (every slot live) are still read.
pub(crate) const REGISTRY_VERSION: u32 = 2;

impl Registry {
    pub(crate) fn len(&self) -> usize {
        self.devices.len()
    }

    /// Live (registered, not erased) devices.
    pub(crate) fn live(&self) -> usize {
        self.by_serial.len()
    }

    pub(crate) fn id(&self, serial: &str) -> Option<u32> {
        self.by_serial.get(serial).copied()
    }

    /// A live device's record (`None` for erased slots and unknown ids).
    pub(crate) fn get(&self, id: u32) -> Option<&DeviceInfo> {
        match self.state(id) {
            SlotState::Live => self.devices.get(id as usize),
            SlotState::Erased | SlotState::Purged => None,
        }
    }

    /// The state of a slot.
    pub(crate) fn state(&self, id: u32) -> SlotState {
        self.states.get(id as usize).copied().unwrap_or_default()
    }

    /// The attributes the fleet rollups key a device's rows by: a live device's record, or
    /// what an erased slot keeps until its purge (serial empty).
    pub(crate) fn rollup_record(&self, id: u32) -> Option<&DeviceInfo> {
        match self.state(id) {
            SlotState::Live | SlotState::Erased => self.devices.get(id as usize),
            SlotState::Purged => None,
        }
    }

    /// Ids of erased devices whose rows may still be in segments, ascending.
    pub(crate) fn erased(&self) -> Vec<u32> {
        (0..self.states.len() as u32)
            .filter(|&id| self.state(id) == SlotState::Erased)
            .collect()
    }

    /// Erases a live device: its serial is forgotten and its slot keeps only the attributes
    /// its rollup cells are keyed by. Used by the write path and by log replay.
    pub(crate) fn apply_erase(&mut self, id: u32, file: &str) -> Result<()> {
        let idx = id as usize;
        if idx >= self.devices.len() || self.state(id) != SlotState::Live {
            return Err(Error::corruption(
                file,
                0,
                format!("erasure of device id {id}, which is not a registered device"),
            ));
        }
        let old = std::mem::replace(&mut self.devices[idx], DeviceInfo::unknown(""));
        self.by_serial.remove(old.serial.as_str());
        self.devices[idx] = DeviceInfo {
            model: old.model,
            capacity_kg: old.capacity_kg,
            region: old.region,
            segment: old.segment,
            ..DeviceInfo::unknown("")
        };
        self.set_state(id, SlotState::Erased);
        Ok(())
    }

    /// Marks an erased device purged: its rows are gone from every file, and so now are
    /// its attributes.
    pub(crate) fn mark_purged(&mut self, id: u32) {
        if self.state(id) == SlotState::Erased {
            if let Some(d) = self.devices.get_mut(id as usize) {
                *d = DeviceInfo::unknown("");
            }
            self.set_state(id, SlotState::Purged);
        }
    }

    fn set_state(&mut self, id: u32, state: SlotState) {
        let idx = id as usize;
        if self.states.len() <= idx {
            self.states.resize(idx + 1, SlotState::Live);
        }
        self.states[idx] = state;
    }

    /// Fills region and segment from the postcode table where they are empty.
    pub(crate) fn derive(&self, info: &mut DeviceInfo) {
        if let Some((region, segment)) = self.postcodes.get(&info.postcode) {
            if info.region.is_empty() {
                info.region = region.clone();
            }
            if info.segment.is_empty() {
                info.segment = segment.clone();
            }
        }
    }

    /// Registers (or re-registers) a device under the given id, which must be its existing
    /// id or the next free one; used both by the write path and by log replay.
    pub(crate) fn apply_register(&mut self, id: u32, info: DeviceInfo, file: &str) -> Result<()> {
        let idx = id as usize;
        if idx < self.devices.len() {
            if self.state(id) != SlotState::Live || self.devices[idx].serial != info.serial {
                return Err(Error::corruption(
                    file,
                    0,
                    format!("device id {id} registered to two serials"),
                ));
            }
            self.devices[idx] = info;
        } else if idx == self.devices.len() {
            self.by_serial.insert(SerialKey::new(&info.serial), id);
            self.devices.push(info);
        } else {
            return Err(Error::corruption(
                file,
                0,
                format!(
                    "device id {id} skips ids (registry has {})",
                    self.devices.len()
                ),
            ));
        }
        Ok(())
    }

    pub(crate) fn set_postcodes(&mut self, table: &[PostcodeEntry]) {
        for e in table {
            self.postcodes
                .insert(e.postcode.clone(), (e.region.clone(), e.segment.clone()));
        }
    }

    /// Serialises the registry (the payload of a registry file, before the envelope).
    pub(crate) fn encode(&self) -> Result<Vec<u8>> {
        let mut raw = Vec::with_capacity(self.devices.len() * 96);
        varint::put_u64(&mut raw, self.devices.len() as u64);
        for (id, d) in self.devices.iter().enumerate() {
            raw.push(match self.state(id as u32) {
                SlotState::Live => 0,
                SlotState::Erased => 1,
                SlotState::Purged => 2,
            });
            encode_device(&mut raw, d);
        }
        let mut pcs: Vec<_> = self.postcodes.iter().collect();
        pcs.sort();
        varint::put_u64(&mut raw, pcs.len() as u64);
        for (p, (r, s)) in pcs {
            varint::put_bytes(&mut raw, p.as_bytes());
            varint::put_bytes(&mut raw, r.as_bytes());
            varint::put_bytes(&mut raw, s.as_bytes());
        }
        let packed = zstd::bulk::compress(&raw, 1)
            .map_err(|e| Error::io("compress registry", "registry", e))?;
        let mut out = Vec::with_capacity(packed.len() + 10);
        varint::put_u64(&mut out, raw.len() as u64);
        out.extend_from_slice(&packed);
        Ok(files::encode_envelope(
            &files::REGISTRY_MAGIC,
            REGISTRY_VERSION,
            &out,
        ))
    }

    /// Parses a registry file.
    pub(crate) fn decode(file: &str, bytes: &[u8]) -> Result<Registry> {
        let (version, payload) =
            files::decode_envelope(file, bytes, &files::REGISTRY_MAGIC, REGISTRY_VERSION)?;
        let base = files::ENVELOPE_HEADER as u64;
        let corrupt = |what: &str| Error::corruption(file, base, what.to_string());
        let mut r = varint::Reader::new(payload);
        let raw_len = r
            .u64()
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n <= 1 << 32)
            .ok_or_else(|| corrupt("bad registry length"))?;
        let rest = payload.get(r.pos()..).ok_or_else(|| corrupt("truncated"))?;
        let raw = files::unzstd(rest, raw_len)
            .ok_or_else(|| corrupt("registry does not decompress to its length"))?;
        let mut r = varint::Reader::new(&raw);
        let mut reg = Registry::default();
        let n = r.u64().ok_or_else(|| corrupt("truncated device count"))?;
        for id in 0..n {
            let state = if version >= 2 {
                match r.u8() {
                    Some(0) => SlotState::Live,
                    Some(1) => SlotState::Erased,
                    Some(2) => SlotState::Purged,
                    _ => return Err(corrupt("bad device slot state")),
                }
            } else {
                SlotState::Live
            };
            let d = decode_device(&mut r).ok_or_else(|| corrupt("truncated device record"))?;
            let id = u32::try_from(id).map_err(|_| corrupt("too many devices"))?;
            if state == SlotState::Live {
                reg.apply_register(id, d, file)?;
            } else {
                if !d.serial.is_empty() {
                    return Err(corrupt("an erased device slot holds a serial"));
                }
                reg.devices.push(d);
                reg.set_state(id, state);
            }
        }
        let n = r.u64().ok_or_else(|| corrupt("truncated postcode count"))?;
        for _ in 0..n {
            let (Some(p), Some(g), Some(s)) = (r.str(), r.str(), r.str()) else {
                return Err(corrupt("truncated postcode record"));
            };
            reg.postcodes
                .insert(p.to_string(), (g.to_string(), s.to_string()));
        }
        if !r.is_empty() {
            return Err(corrupt("trailing bytes after the registry"));
        }
        Ok(reg)
    }
}

/// Appends a device record (also used by log records).
pub(crate) fn encode_device(out: &mut Vec<u8>, d: &DeviceInfo) {
    varint::put_bytes(out, d.serial.as_bytes());
    varint::put_bytes(out, d.model.as_bytes());
    out.extend_from_slice(&d.capacity_kg.to_le_bytes());
    varint::put_bytes(out, d.firmware.as_bytes());
    varint::put_i64(out, d.installed_at);
    out.extend_from_slice(&d.lat.to_le_bytes());
    out.extend_from_slice(&d.lon.to_le_bytes());
    varint::put_bytes(out, d.postcode.as_bytes());
    varint::put_bytes(out, d.region.as_bytes());
    varint::put_bytes(out, d.segment.as_bytes());
}

/// Reads a device record written by [`encode_device`].
pub(crate) fn decode_device(r: &mut varint::Reader<'_>) -> Option<DeviceInfo> {
    Some(DeviceInfo {
        serial: r.str()?.to_string(),
        model: r.str()?.to_string(),
        capacity_kg: r.f64()?,
        firmware: r.str()?.to_string(),
        installed_at: r.i64()?,
        lat: r.f64()?,
        lon: r.f64()?,
        postcode: r.str()?.to_string(),
        region: r.str()?.to_string(),
        segment: r.str()?.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(serial: &str) -> DeviceInfo {
        DeviceInfo {
            model: "AquaLine 8".into(),
            capacity_kg: 8.0,
            postcode: "SW1A".into(),
            ..DeviceInfo::unknown(serial)
        }
    }

    /// Serials short enough to sit in the index entry and longer ones (on the heap) are
    /// found by the same `&str`, and only by it.
    #[test]
    fn serial_keys_inline_and_on_the_heap() {
        let mut map = std::collections::HashMap::new();
        let serials = [
            "",
            "WM-00012345",
            &"x".repeat(22),
            &"y".repeat(23),
            "é-ü-日本",
        ];
        for (i, s) in serials.iter().enumerate() {
            map.insert(SerialKey::new(s), i);
        }
        assert!(matches!(
            SerialKey::new(&"x".repeat(22)),
            SerialKey::Inline { .. }
        ));
        assert!(matches!(
            SerialKey::new(&"y".repeat(23)),
            SerialKey::Heap(_)
        ));
        for (i, s) in serials.iter().enumerate() {
            assert_eq!(map.get(*s), Some(&i), "{s}");
        }
        assert_eq!(map.get("WM-0001234"), None);
        assert_eq!(map.get(&"y".repeat(22) as &str), None);
        assert_eq!(map.remove("WM-00012345"), Some(1));
        assert_eq!(map.get("WM-00012345"), None);
    }

    #[test]
    fn round_trip_with_postcodes() {
        let mut reg = Registry::default();
        reg.set_postcodes(&[PostcodeEntry {
            postcode: "SW1A".into(),
            region: "London".into(),
            segment: "A".into(),
        }]);
        for i in 0..100 {
            let mut d = dev(&format!("WM-{i:08}"));
            reg.derive(&mut d);
            let id = reg.id(&d.serial).unwrap_or(reg.len() as u32);
            reg.apply_register(id, d, "t").expect("register");
        }
        assert_eq!(reg.get(5).map(|d| d.region.as_str()), Some("London"));
        let bytes = reg.encode().expect("encode");
        let back = Registry::decode("r", &bytes).expect("decode");
        assert_eq!(back.devices, reg.devices);
        assert_eq!(back.id("WM-00000042"), Some(42));
        assert_eq!(back.postcodes.len(), 1);
    }

    #[test]
    fn ids_cannot_skip_or_change_serial() {
        let mut reg = Registry::default();
        assert!(reg.apply_register(1, dev("a"), "f").is_err());
        reg.apply_register(0, dev("a"), "f").expect("first");
        assert!(reg.apply_register(0, dev("b"), "f").is_err());
        reg.apply_register(0, dev("a"), "f")
            .expect("re-register keeps id");
        assert_eq!(reg.len(), 1);
    }

    #[test]
    fn serials_are_checked() {
        assert!(validate_serial("WM-1").is_ok());
        for bad in ["", " WM", "WM\n1", &"x".repeat(65)] {
            assert!(validate_serial(bad).is_err(), "{bad:?}");
        }
    }
}
