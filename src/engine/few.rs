//! A list that is nearly always one element long, kept in place when it is: the table keeps such
//! lists for every peer (its addresses and IPs on a link, the addresses and ways in its node was
//! told), and a boxed slice of one element took an allocation of 32 to 48 bytes beside the 16 of
//! its pointer.

/// See the module docs. Read as a slice; compared as one.
#[derive(Clone, Debug)]
pub(crate) enum Few<T> {
    One(T),
    More(Box<[T]>),
}

impl<T> Default for Few<T> {
    fn default() -> Self {
        Few::More(Box::default())
    }
}

impl<T> std::ops::Deref for Few<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match self {
            Few::One(t) => std::slice::from_ref(t),
            Few::More(ts) => ts,
        }
    }
}

impl<T> From<Vec<T>> for Few<T> {
    fn from(mut v: Vec<T>) -> Self {
        match (v.len(), v.pop()) {
            (1, Some(t)) => Few::One(t),
            (_, last) => {
                v.extend(last);
                Few::More(v.into_boxed_slice())
            }
        }
    }
}

impl<T> FromIterator<T> for Few<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        iter.into_iter().collect::<Vec<T>>().into()
    }
}

impl<T: PartialEq> PartialEq for Few<T> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<T: Eq> Eq for Few<T> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_reads_and_compares_as_the_slice_it_holds() {
        let none: Few<u8> = Vec::new().into();
        let one: Few<u8> = vec![7].into();
        let two: Few<u8> = [7, 8].into_iter().collect();
        assert!(none.is_empty() && matches!(none, Few::More(_)));
        assert_eq!((&one[..], matches!(one, Few::One(7))), (&[7][..], true));
        assert_eq!(&two[..], &[7, 8]);
        assert_eq!(Few::More(vec![7].into_boxed_slice()), one, "the same list, held either way");
        assert_ne!(one, two);
        assert_eq!(Few::<u8>::default(), none);
    }
}
