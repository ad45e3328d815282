//! Memory: a storage level with a capacity and one port of `bandwidth` bytes per cycle (shared memory, tensor
//! memory, the register file, the SM's share of L2). Its cost model is `bytes / bandwidth` cycles; a bandwidth of
//! 0 means the port is not modelled (never a bottleneck: register operands), and only the capacity bounds tiles.

#[derive(Clone, Debug, serde::Serialize)]
pub struct Memory {
    pub capacity: f64,
    pub bandwidth: f64,
}

impl Memory {
    pub fn cycles(&self, bytes: f64) -> f64 {
        if self.bandwidth > 0.0 {
            bytes / self.bandwidth
        } else {
            0.0
        }
    }

    /// `Err` names the capacity when `bytes` do not fit.
    pub fn fits(&self, bytes: f64) -> Result<(), String> {
        if bytes <= self.capacity {
            Ok(())
        } else {
            Err(format!(
                "needs {} B but holds {} B",
                bytes.ceil(),
                self.capacity
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Memory;

    #[test]
    fn shared_memory_traffic_of_a_tile() {
        let smem = Memory {
            capacity: 228.0 * 1024.0,
            bandwidth: 128.0,
        };
        // Q, K and V tiles of 128×128 bf16: FA4's 768 SMEM cycles.
        assert_eq!(smem.cycles(3.0 * 32768.0), 768.0);
        assert!(smem.fits(224.0 * 1024.0).is_ok());
        assert!(smem
            .fits(229.0 * 1024.0)
            .unwrap_err()
            .contains("holds 233472 B"));
        assert_eq!(
            Memory {
                capacity: 1.0,
                bandwidth: 0.0
            }
            .cycles(1e9),
            0.0
        );
    }
}
