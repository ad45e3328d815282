//! Energy-per-action and area tables (`arch/energy/*.ron`). Every entry carries its source; an action an arch
//! charges but its table lacks is an error.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EnergyTable {
    pub name: String,
    /// Technology node, e.g. `45nm`.
    pub node: String,
    pub source: String,
    /// A table this one amends: its actions and areas, with this table's entries replacing or adding to them.
    /// Used for what-if variants (another price for one component) without copying the whole table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    pub actions: BTreeMap<String, ActionEnergy>,
    #[serde(default)]
    pub area: BTreeMap<String, AreaEntry>,
}

/// Energy of one action, in picojoules.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ActionEnergy {
    pub pj: f64,
    /// What one action is (`16-bit fp MAC`, `64-bit DRAM access`).
    pub per: String,
    pub source: String,
}

/// Area of one component, in µm².
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AreaEntry {
    pub um2: f64,
    pub source: String,
}
