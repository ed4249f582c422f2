//! Shared by the fuzz targets: structure-aware mutation of sealed states, and inputs built
//! from fuzz bytes.

use rcf_core::RandomCutForest;
use rcf_core::state::{open, seal};
use rcf_stream::Detector;

/// libFuzzer's mutator for a sealed state (magic, version, length, CRC, payload): most of the
/// time the *payload* is mutated and the envelope re-sealed with a valid checksum, so what
/// gets tested is the decoder and the structural validation behind it, not the CRC; now and
/// then the raw bytes are mutated, so the envelope checks are fuzzed too.
pub fn mutate_sealed(
    data: &mut [u8],
    size: usize,
    max_size: usize,
    seed: u32,
    magic: &[u8; 8],
    versions: &[u32],
) -> usize {
    const HEADER: usize = 24;
    if seed % 8 != 0 && size >= HEADER && max_size > HEADER {
        let version = u32::from_le_bytes(data[8..12].try_into().unwrap());
        if versions.contains(&version)
            && let Ok(payload) = open(magic, version, &data[..size])
        {
            let mut buf = payload.to_vec();
            let len = buf.len();
            buf.resize(max_size - HEADER, 0);
            let new_len = libfuzzer_sys::fuzzer_mutate(&mut buf, len, max_size - HEADER);
            let sealed = seal(magic, version, &buf[..new_len]);
            data[..sealed.len()].copy_from_slice(&sealed);
            return sealed.len();
        }
    }
    libfuzzer_sys::fuzzer_mutate(data, size, max_size)
}

/// Writes `seeds` into the target's corpus directory (the first argument that is not a
/// libFuzzer flag), so a run always starts from valid states of several shapes. Called from
/// `fuzz_target!`'s init, which libFuzzer runs before it reads the corpus. Deterministic: the
/// same build writes the same seeds.
pub fn write_seeds(seeds: Vec<Vec<u8>>) {
    let Some(dir) = std::env::args().skip(1).find(|a| !a.starts_with('-')) else {
        return;
    };
    let dir = std::path::Path::new(&dir);
    if !dir.is_dir() {
        return;
    }
    for (i, s) in seeds.iter().enumerate() {
        let path = dir.join(format!("seed-{i}"));
        if !path.exists() {
            std::fs::write(path, s).expect("write a seed");
        }
    }
}

// Seed inputs: forest states, detector checkpoints (warming, shingled, multivariate, with an
// open event and missing values) and CSV / JSON Lines inputs.


fn wave(t: usize, j: usize) -> f32 {
    ((t as f32 * (0.05 + 0.03 * j as f32)).sin() * 10.0).round() / 10.0
}

pub fn forests() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (dims, shingle, trees, sample, n) in [
        (1, 4, 3, 8, 40),
        (2, 2, 4, 16, 200),
        (3, 1, 2, 32, 10),
        (1, 1, 1, 2, 5),
        (2, 3, 5, 16, 0),
    ] {
        let mut f = RandomCutForest::builder(dims)
            .shingle_size(shingle)
            .num_trees(trees)
            .sample_size(sample)
            .box_cache_min_mass(2 + n % 5)
            .seed(n as u64)
            .build()
            .unwrap();
        for t in 0..n {
            let x: Vec<f32> = (0..dims).map(|j| wave(t, j)).collect();
            f.update(&x).unwrap();
        }
        out.push(f.to_bytes());
    }
    out
}

pub fn detectors() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (metrics, n, spike) in [(1, 5, None), (2, 120, Some(100)), (1, 300, Some(290)), (3, 60, None)]
    {
        let names: Vec<String> = (0..metrics).map(|j| format!("m{j}")).collect();
        let mut d = Detector::builder(names)
            .sample_size(16)
            .num_trees(3)
            .shingle_size(2)
            .seed(1)
            .build()
            .unwrap();
        for t in 0..n {
            let mut x: Vec<f32> = (0..metrics).map(|j| wave(t, j)).collect();
            if Some(t) == spike {
                x[0] = 50.0; // opens an event
            }
            if t % 17 == 5 {
                x[metrics - 1] = f32::NAN;
            }
            d.process(&x).unwrap();
        }
        out.push(d.to_bytes());
    }
    out
}

pub fn rows() -> Vec<Vec<u8>> {
    let csv = "time,temp,load\n1,20.5,0.3\n2,21.0,\n3,nan,0.4\n4,99,0.5\n";
    let semi = "a;b\n1;2\n3;4\n";
    let jsonl = "{\"time\": 1, \"a\": 1.5, \"b\": 2}\n{\"time\": 2, \"a\": null, \"b\": \"3\"}\n\n{\"a\": 4, \"b\": 5}\n";
    vec![
        [&[0u8][..], csv.as_bytes()].concat(),
        [&[2u8][..], csv.as_bytes()].concat(),
        [&[0u8][..], semi.as_bytes()].concat(),
        [&[1u8][..], jsonl.as_bytes()].concat(),
        [&[3u8][..], jsonl.as_bytes()].concat(),
    ]
}

