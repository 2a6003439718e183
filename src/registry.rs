//! The device registry: serial string to dense integer id, and each device's attributes.

use serde::{Deserialize, Serialize};

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
    /// Region, derived from the postcode table when one is loaded.
    pub region: String,
    /// Socio-economic segment (`A`..`O`), derived from the postcode table when one is loaded.
    pub segment: String,
}
