use std::fmt;

/// One of the three compute parties. Party `i` holds share components `i`
/// and `i + 1` (mod 3); its `next` is the party it shares component `i + 1`
/// with, its `prev` the one it shares component `i` with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PartyId {
    /// Party 0.
    P0,
    /// Party 1.
    P1,
    /// Party 2.
    P2,
}

impl PartyId {
    /// All three parties in index order.
    pub const ALL: [PartyId; 3] = [PartyId::P0, PartyId::P1, PartyId::P2];

    /// The party's index, 0, 1 or 2.
    pub fn index(self) -> usize {
        match self {
            PartyId::P0 => 0,
            PartyId::P1 => 1,
            PartyId::P2 => 2,
        }
    }

    /// The party with index `index`, if it is 0, 1 or 2.
    pub fn from_index(index: usize) -> Option<PartyId> {
        PartyId::ALL.get(index).copied()
    }

    /// The party after this one, which shares this party's second component.
    pub fn next(self) -> PartyId {
        PartyId::ALL[(self.index() + 1) % 3]
    }

    /// The party before this one, which shares this party's first component.
    pub fn prev(self) -> PartyId {
        PartyId::ALL[(self.index() + 2) % 3]
    }
}

impl fmt::Display for PartyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "party {}", self.index())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_order() {
        for p in PartyId::ALL {
            assert_eq!(p.next().prev(), p);
            assert_ne!(p.next(), p);
            assert_eq!(PartyId::from_index(p.index()), Some(p));
        }
        assert_eq!(PartyId::P2.next(), PartyId::P0);
        assert_eq!(PartyId::from_index(3), None);
    }
}
