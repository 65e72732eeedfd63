//! `Serialize` and `Deserialize` through a type's text form (`Display` and `FromStr`),
//! for the types whose text is what a reader expects: peer names ("aa:bb:cc:dd:ee:ff")
//! and subnets ("10.0.0.0/8").

macro_rules! via_text {
    ($ty:ty, $what:literal) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Visitor;
                impl serde::de::Visitor<'_> for Visitor {
                    type Value = $ty;
                    fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                        f.write_str($what)
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$ty, E> {
                        v.parse().map_err(E::custom)
                    }
                }
                deserializer.deserialize_str(Visitor)
            }
        }
    };
}

via_text!(crate::name::PeerName, "a peer name like \"00:00:00:00:00:01\"");
via_text!(crate::config::Subnet, "a subnet like \"10.0.0.0/8\"");
