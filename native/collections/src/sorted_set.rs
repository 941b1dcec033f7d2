//! A sorted set of terms in Erlang term order, as a bucketed sorted vector.
//!
//! Members live in buckets (sorted `Vec<Term>`s of at most [`MAX_BUCKET`] members, each
//! bucket's members all below the next bucket's). A Fenwick tree over the bucket sizes turns
//! a position into (bucket, offset) and back in O(log buckets). So add, remove, index_of
//! and at cost O(log n) comparisons plus a memmove inside one bucket, never a shift of the
//! whole set; slice is that plus the members it copies.
//!
//! Membership is `==` in term order (`etf::order::compare`): `1` and `1.0` are the same
//! member, as in `:gb_sets`. The member kept is the one added first.

use std::cmp::Ordering;

use rustelixir_nif::etf::order::compare;
use rustelixir_nif::Term;

/// A bucket is split in two when it reaches this size. Buckets made by a bulk load are
/// half full, leaving room for later adds; one that shrinks below an eighth of it is merged
/// into a neighbour.
pub const MAX_BUCKET: usize = 512;

/// Sums of bucket sizes (1-based Fenwick layout).
#[derive(Default, Debug)]
struct Fenwick {
    tree: Vec<usize>,
}

impl Fenwick {
    fn build(sizes: impl Iterator<Item = usize>) -> Self {
        let mut tree = vec![0];
        tree.extend(sizes);
        let n = tree.len() - 1;
        for i in 1..=n {
            let parent = i + (i & i.wrapping_neg());
            if parent <= n {
                tree[parent] += tree[i];
            }
        }
        Fenwick { tree }
    }

    fn len(&self) -> usize {
        self.tree.len().saturating_sub(1)
    }

    /// Adds `delta` (two's complement for a decrease) to bucket `i`'s size.
    fn add(&mut self, i: usize, delta: isize) {
        let mut i = i + 1;
        while i < self.tree.len() {
            self.tree[i] = self.tree[i].wrapping_add(delta as usize);
            i += i & i.wrapping_neg();
        }
    }

    /// The number of members in buckets `0..i`.
    fn prefix(&self, i: usize) -> usize {
        let mut i = i;
        let mut sum = 0;
        while i > 0 {
            sum += self.tree[i];
            i -= i & i.wrapping_neg();
        }
        sum
    }

    /// (bucket, offset) of position `k`, which must be below the total.
    fn locate(&self, k: usize) -> (usize, usize) {
        let n = self.len();
        let mut pos = 0;
        let mut rem = k;
        let mut step = if n == 0 {
            0
        } else {
            1usize << (usize::BITS - 1 - n.leading_zeros())
        };
        while step > 0 {
            let next = pos + step;
            if next <= n && self.tree[next] <= rem {
                pos = next;
                rem -= self.tree[next];
            }
            step >>= 1;
        }
        (pos, rem)
    }
}

#[derive(Debug)]
pub struct SortedTerms {
    buckets: Vec<Vec<Term>>,
    /// A copy of each bucket's greatest member, side by side: finding the bucket for a
    /// term is a binary search over this array, without a pointer chase (a cache miss at a
    /// million members) per step.
    maxes: Vec<Term>,
    sizes: Fenwick,
    len: usize,
    max_bucket: usize,
}

impl Default for SortedTerms {
    fn default() -> Self {
        Self::with_max_bucket(MAX_BUCKET)
    }
}

/// Where a term is, or would go.
enum Found {
    /// (bucket, offset) of the equal member.
    At(usize, usize),
    /// (bucket, offset) where it would be inserted.
    Absent(usize, usize),
}

impl SortedTerms {
    pub fn new() -> Self {
        Self::default()
    }

    /// With buckets split at `max_bucket` members (at least 4): small buckets let tests
    /// reach splits and merges with few members.
    pub fn with_max_bucket(max_bucket: usize) -> Self {
        SortedTerms {
            buckets: Vec::new(),
            maxes: Vec::new(),
            sizes: Fenwick::default(),
            len: 0,
            max_bucket: max_bucket.max(4),
        }
    }

    fn min_bucket(&self) -> usize {
        (self.max_bucket / 8).max(1)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn reindex(&mut self) {
        self.sizes = Fenwick::build(self.buckets.iter().map(Vec::len));
    }

    fn find(&self, term: &Term) -> Found {
        if self.buckets.is_empty() {
            return Found::Absent(0, 0);
        }
        // The first bucket whose greatest member is not below `term`; past every bucket, the
        // term belongs at the end of the last one.
        let b = self.maxes.partition_point(|max| compare(max, term) == Ordering::Less);
        if b == self.buckets.len() {
            let last = self.buckets.len() - 1;
            return Found::Absent(last, self.buckets[last].len());
        }
        match self.buckets[b].binary_search_by(|m| compare(m, term)) {
            Ok(i) => Found::At(b, i),
            Err(i) => Found::Absent(b, i),
        }
    }

    /// Adds `term` unless an equal member is there; answers the member's index either way.
    pub fn add(&mut self, term: Term) -> usize {
        match self.find(&term) {
            Found::At(b, i) => self.sizes.prefix(b) + i,
            Found::Absent(b, i) => {
                if self.buckets.is_empty() {
                    self.maxes.push(term.clone());
                    self.buckets.push(vec![term]);
                    self.reindex();
                    self.len = 1;
                    return 0;
                }
                let index = self.sizes.prefix(b) + i;
                if i == self.buckets[b].len() {
                    self.maxes[b] = term.clone();
                }
                self.buckets[b].insert(i, term);
                self.len += 1;
                if self.buckets[b].len() >= self.max_bucket {
                    let upper = self.buckets[b].split_off(self.max_bucket / 2);
                    self.buckets.insert(b + 1, upper);
                    self.maxes.insert(b, self.buckets[b].last().expect("half a bucket").clone());
                    self.reindex();
                } else {
                    self.sizes.add(b, 1);
                }
                index
            }
        }
    }

    /// Removes the member equal to `term`; false when there was none.
    pub fn remove(&mut self, term: &Term) -> bool {
        let Found::At(b, i) = self.find(term) else {
            return false;
        };
        self.buckets[b].remove(i);
        self.len -= 1;
        let size = self.buckets[b].len();
        if size > 0 && i == size {
            self.maxes[b] = self.buckets[b][size - 1].clone();
        }
        if size == 0 {
            self.buckets.remove(b);
            self.maxes.remove(b);
            self.reindex();
        } else if size < self.min_bucket() && self.buckets.len() > 1 {
            // Fold the small bucket into a neighbour (split again if that overfills it).
            let (left, right) = if b + 1 < self.buckets.len() {
                (b, b + 1)
            } else {
                (b - 1, b)
            };
            let moved = self.buckets.remove(right);
            self.buckets[left].extend(moved);
            // The merged bucket's greatest member is the right one's.
            self.maxes.remove(left);
            if self.buckets[left].len() >= self.max_bucket {
                let half = self.buckets[left].len() / 2;
                let upper = self.buckets[left].split_off(half);
                self.buckets.insert(left + 1, upper);
                self.maxes.insert(left, self.buckets[left].last().expect("half a bucket").clone());
            }
            self.reindex();
        } else {
            self.sizes.add(b, -1);
        }
        true
    }

    pub fn index_of(&self, term: &Term) -> Option<usize> {
        match self.find(term) {
            Found::At(b, i) => Some(self.sizes.prefix(b) + i),
            Found::Absent(..) => None,
        }
    }

    pub fn at(&self, index: usize) -> Option<&Term> {
        if index >= self.len {
            return None;
        }
        let (b, i) = self.sizes.locate(index);
        Some(&self.buckets[b][i])
    }

    /// Up to `count` members from `start` on (none when `start` is past the end).
    pub fn slice(&self, start: usize, count: usize) -> impl Iterator<Item = &Term> {
        let (b, i) = if start < self.len {
            self.sizes.locate(start)
        } else {
            (self.buckets.len(), 0)
        };
        let count = count.min(self.len.saturating_sub(start));
        self.buckets[b.min(self.buckets.len())..]
            .iter()
            .flatten()
            .skip(i)
            .take(count)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Term> {
        self.buckets.iter().flatten()
    }

    /// Adds every term, as adding them one by one in order would (an equal member already
    /// present, or earlier in `terms`, is kept). A batch that is large next to the set is
    /// sorted and merged in one pass; a small one is added term by term.
    pub fn add_many(&mut self, mut terms: Vec<Term>) -> usize {
        if terms.len() < 64 || terms.len() * 4 < self.len {
            for term in terms {
                self.add(term);
            }
            return self.len;
        }
        // Stable: among equal terms the first given stays first, and dedup keeps it.
        terms.sort_by(compare);
        terms.dedup_by(|later, earlier| compare(later, earlier) == Ordering::Equal);
        let old = std::mem::take(&mut self.buckets);
        let mut merged: Vec<Term> = Vec::with_capacity(self.len + terms.len());
        let mut existing = old.into_iter().flatten().peekable();
        let mut new = terms.into_iter().peekable();
        loop {
            let order = match (existing.peek(), new.peek()) {
                (Some(a), Some(b)) => compare(a, b),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => break,
            };
            match order {
                Ordering::Less => merged.push(existing.next().expect("peeked")),
                Ordering::Greater => merged.push(new.next().expect("peeked")),
                Ordering::Equal => {
                    merged.push(existing.next().expect("peeked"));
                    new.next();
                }
            }
        }
        self.load(merged);
        self.len
    }

    /// Replaces the contents with `sorted` (strictly increasing in term order).
    fn load(&mut self, sorted: Vec<Term>) {
        self.len = sorted.len();
        self.buckets = Vec::with_capacity(sorted.len() / (self.max_bucket / 2) + 1);
        let mut rest = sorted.into_iter();
        loop {
            let bucket: Vec<Term> = rest.by_ref().take(self.max_bucket / 2).collect();
            if bucket.is_empty() {
                break;
            }
            self.buckets.push(bucket);
        }
        self.maxes = self.buckets.iter().map(|b| b.last().expect("not empty").clone()).collect();
        self.reindex();
    }

    /// Checks the structure's invariants (for tests): sorted, no empty bucket, sizes right.
    pub fn check(&self) -> Result<(), String> {
        let mut count = 0;
        if self.maxes.len() != self.buckets.len() {
            return Err(format!("{} maxes for {} buckets", self.maxes.len(), self.buckets.len()));
        }
        for (b, bucket) in self.buckets.iter().enumerate() {
            if bucket.last() != Some(&self.maxes[b]) {
                return Err(format!("max of bucket {b} is {:?}, not {:?}", self.maxes[b], bucket.last()));
            }
            if bucket.is_empty() {
                return Err(format!("bucket {b} is empty"));
            }
            if bucket.len() >= self.max_bucket {
                return Err(format!("bucket {b} has {} members", bucket.len()));
            }
            if self.sizes.prefix(b) != count {
                return Err(format!(
                    "prefix of bucket {b} is {} not {count}",
                    self.sizes.prefix(b)
                ));
            }
            count += bucket.len();
        }
        if count != self.len {
            return Err(format!("len {} but {count} members", self.len));
        }
        let mut previous: Option<&Term> = None;
        for m in self.iter() {
            if let Some(p) = previous {
                if compare(p, m) != Ordering::Less {
                    return Err(format!("{p:?} is not below {m:?}"));
                }
            }
            previous = Some(m);
        }
        Ok(())
    }
}
