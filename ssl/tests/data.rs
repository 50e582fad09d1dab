//! Dataset readers on small real files written into a temporary directory: every format
//! read back correctly, and every documented error.

use std::io::Write;
use std::path::{Path, PathBuf};
use tessera_ssl::data::{
    read_cifar100, read_idx, read_image_folder, Dataset, FolderOptions, Format, Split,
};
use tessera_ssl::Error;

/// A fresh directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("tessera-ssl-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn idx_images(n: u32, h: u32, w: u32) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [0x803u32, n, h, w] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v.extend((0..n * h * w).map(|i| (i % 251) as u8));
    v
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut v = 0x801u32.to_be_bytes().to_vec();
    v.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    v.extend_from_slice(labels);
    v
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn idx_plain_and_gzip() {
    let d = TempDir::new("idx");
    d.write("train-images-idx3-ubyte", &idx_images(3, 2, 4));
    d.write("train-labels-idx1-ubyte", &idx_labels(&[7, 0, 9]));
    d.write("t10k-images-idx3-ubyte.gz", &gzip(&idx_images(2, 2, 4)));
    d.write("t10k-labels-idx1-ubyte.gz", &gzip(&idx_labels(&[1, 2])));
    let tr = Dataset::open(d.path()).unwrap();
    assert_eq!(tr.format, Format::Idx);
    assert_eq!(tr.shape, [3, 1, 2, 4]);
    assert_eq!(tr.labels, vec![7, 0, 9]);
    assert_eq!(tr.num_classes, 10);
    assert_eq!(tr.image_bytes(1).unwrap(), &[8, 9, 10, 11, 12, 13, 14, 15]);
    let img = tr.image(2).unwrap();
    assert_eq!(img.shape(), [1, 2, 4]);
    assert_eq!(img.at(0, 0, 0), 16.0 / 255.0);
    assert!(tr.image(3).is_err());
    let te = Dataset::open_split(d.path(), Split::Test).unwrap();
    assert_eq!((te.len(), te.labels.clone()), (2, vec![1, 2]));
}

#[test]
fn idx_errors() {
    let d = TempDir::new("idx-err");
    let labels = d.write("l", &idx_labels(&[1, 2, 3]));
    let check = |name: &str, bytes: &[u8], labels: &Path| {
        let p = d.write(name, bytes);
        read_idx(&p, labels, 10).unwrap_err()
    };
    // Bad magic: a label file given as images.
    let e = check("magic", &idx_labels(&[1, 2, 3]), &labels);
    assert!(
        matches!(
            e,
            Error::BadMagic {
                expected: 0x803,
                found: 0x801,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("bad magic number 0x00000801"), "{e}");
    // Truncated: one pixel short; the header alone too short.
    let mut short = idx_images(3, 2, 2);
    short.pop();
    let e = check("short", &short, &labels);
    assert!(
        matches!(
            e,
            Error::Truncated {
                expected: 28,
                actual: 27,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("expected 28 bytes, found 27"), "{e}");
    let e = check("tiny", &[0, 0, 8], &labels);
    assert!(
        matches!(
            e,
            Error::Truncated {
                expected: 16,
                actual: 3,
                ..
            }
        ),
        "{e}"
    );
    // Trailing bytes.
    let mut long = idx_images(3, 2, 2);
    long.push(0);
    assert!(matches!(
        check("long", &long, &labels),
        Error::TrailingData { .. }
    ));
    // Count mismatch and a label out of range.
    let e = check("four", &idx_images(4, 2, 2), &labels);
    assert!(
        matches!(
            e,
            Error::CountMismatch {
                images: 4,
                labels: 3,
                ..
            }
        ),
        "{e}"
    );
    let bad = d.write("bad-labels", &idx_labels(&[1, 10, 3]));
    let e = check("three", &idx_images(3, 2, 2), &bad);
    assert!(
        matches!(
            e,
            Error::LabelOutOfRange {
                index: 1,
                label: 10,
                num_classes: 10,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("bad-labels"), "{e}");
    // Corrupt gzip and missing files.
    let gz = d.write("x.gz", b"not gzip at all");
    let e = read_idx(&gz, &labels, 10).unwrap_err();
    assert!(
        matches!(e, Error::Io { .. }) && e.to_string().contains("gzip"),
        "{e}"
    );
    let e = read_idx(&d.path().join("nope"), &labels, 10).unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
}

#[test]
fn open_reports_what_it_looked_for() {
    let d = TempDir::new("open");
    let e = Dataset::open(d.path().join("missing")).unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
    d.write("readme.txt", b"hello");
    let e = Dataset::open(d.path()).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::UnknownFormat { .. }));
    for want in [
        "idx3-ubyte",
        "data_batch_",
        "train.bin",
        "subfolder per class",
    ] {
        assert!(msg.contains(want), "{msg}");
    }
    // IDX training files only: the test split is missing.
    d.write("train-images-idx3-ubyte", &idx_images(1, 1, 1));
    d.write("train-labels-idx1-ubyte", &idx_labels(&[0]));
    let e = Dataset::open_split(d.path(), Split::Test).unwrap_err();
    assert!(e.to_string().contains("t10k-images-idx3-ubyte"), "{e}");
}

fn cifar_record(labels: &[u8], fill: u8) -> Vec<u8> {
    let mut r = labels.to_vec();
    r.extend((0..3072).map(|i| fill.wrapping_add((i / 1024) as u8)));
    r
}

#[test]
fn cifar10_batches() {
    let d = TempDir::new("cifar10");
    let sub = "cifar-10-batches-bin";
    let batch = |recs: &[(u8, u8)]| -> Vec<u8> {
        recs.iter()
            .flat_map(|&(l, f)| cifar_record(&[l], f))
            .collect()
    };
    d.write(&format!("{sub}/data_batch_2.bin"), &batch(&[(5, 30)]));
    d.write(
        &format!("{sub}/data_batch_1.bin"),
        &batch(&[(3, 10), (9, 20)]),
    );
    d.write(&format!("{sub}/test_batch.bin"), &batch(&[(1, 40)]));
    d.write(
        &format!("{sub}/batches.meta.txt"),
        b"airplane\nautomobile\n\n",
    );
    let tr = Dataset::open(d.path()).unwrap();
    assert_eq!(tr.format, Format::Cifar10);
    assert_eq!(tr.shape, [3, 3, 32, 32]);
    assert_eq!(tr.labels, vec![3, 9, 5]); // batch 1 before batch 2
    assert_eq!(tr.class_names, vec!["airplane", "automobile"]);
    let img = tr.image_bytes(1).unwrap();
    assert_eq!((img[0], img[1024], img[2048], img[3071]), (20, 21, 22, 22));
    let te = Dataset::open_split(d.path(), Split::Test).unwrap();
    assert_eq!(te.labels, vec![1]);
    // Truncated file, label out of range.
    let mut short = batch(&[(1, 0), (2, 0)]);
    short.truncate(3073 + 100);
    d.write(&format!("{sub}/test_batch.bin"), &short);
    let e = Dataset::open_split(d.path(), Split::Test).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Truncated {
                expected: 6146,
                actual: 3173,
                ..
            }
        ),
        "{e}"
    );
    d.write(&format!("{sub}/test_batch.bin"), &batch(&[(1, 0), (10, 0)]));
    let e = Dataset::open_split(d.path(), Split::Test).unwrap_err();
    assert!(
        matches!(
            e,
            Error::LabelOutOfRange {
                index: 1,
                label: 10,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn cifar100_fine_and_coarse() {
    let d = TempDir::new("cifar100");
    let recs: Vec<u8> = [([4u8, 99u8], 0u8), ([19, 0], 7)]
        .iter()
        .flat_map(|(l, f)| cifar_record(l, *f))
        .collect();
    d.write("cifar-100-binary/train.bin", &recs);
    let fine = Dataset::open(d.path()).unwrap();
    assert_eq!((fine.format, fine.num_classes), (Format::Cifar100, 100));
    assert_eq!(fine.labels, vec![99, 0]);
    let coarse = read_cifar100(&d.path().join("cifar-100-binary"), true, true).unwrap();
    assert_eq!(
        (coarse.labels.clone(), coarse.num_classes),
        (vec![4, 19], 20)
    );
    let e = Dataset::open_split(d.path(), Split::Test).unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }) && e.to_string().contains("test.bin"));
}

/// A small RGB PNG whose pixel (x, y) is (10 x, 10 y, tag).
fn png(d: &TempDir, name: &str, w: u32, h: u32, tag: u8) {
    let p = d.path().join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    image::RgbImage::from_fn(w, h, |x, y| image::Rgb([10 * x as u8, 10 * y as u8, tag]))
        .save(&p)
        .unwrap();
}

#[test]
fn image_folder_reads_sorted_classes() {
    let d = TempDir::new("folder");
    png(&d, "dog/b.png", 5, 4, 1);
    png(&d, "dog/a.PNG", 5, 4, 2);
    png(&d, "cat/x.png", 5, 4, 3);
    d.write("cat/notes.txt", b"ignored");
    let jpg = d.path().join("cat/y.jpg");
    image::RgbImage::from_pixel(5, 4, image::Rgb([200, 100, 50]))
        .save(&jpg)
        .unwrap();
    let ds = Dataset::open(d.path()).unwrap();
    assert_eq!(ds.format, Format::ImageFolder);
    assert_eq!(ds.class_names, vec!["cat", "dog"]);
    assert_eq!(ds.labels, vec![0, 0, 1, 1]);
    assert_eq!(ds.shape, [4, 3, 4, 5]);
    // dog/a.PNG is sample 2: channel planes, not interleaved pixels.
    let a = ds.image_bytes(2).unwrap();
    assert_eq!((a[0], a[1], a[5]), (0, 10, 0)); // R plane: 10 x
    assert_eq!((a[20 + 5], a[40], a[59]), (10, 2, 2)); // G plane row 1, B plane
    let j = ds.image_bytes(1).unwrap(); // the JPEG: lossy, but close
    assert!((i32::from(j[0]) - 200).abs() < 8 && (i32::from(j[40]) - 50).abs() < 8);
    // Grayscale and resized loading.
    let opts = FolderOptions {
        size: Some((2, 3)),
        channels: 1,
    };
    let g = read_image_folder(d.path(), &opts).unwrap();
    assert_eq!(g.shape, [4, 1, 2, 3]);
}

#[test]
fn image_folder_errors() {
    let d = TempDir::new("folder-err");
    png(&d, "a/1.png", 4, 4, 0);
    png(&d, "b/1.png", 6, 4, 0);
    let e = Dataset::open(d.path()).unwrap_err();
    assert!(
        matches!(
            e,
            Error::ImageSize {
                expected: (4, 4),
                found: (4, 6),
                ..
            }
        ),
        "{e}"
    );
    // A resize makes them uniform.
    let opts = FolderOptions {
        size: Some((4, 4)),
        ..FolderOptions::default()
    };
    assert_eq!(read_image_folder(d.path(), &opts).unwrap().len(), 2);
    let ds = Dataset::open_split_with(d.path(), Split::Train, &opts).unwrap();
    assert_eq!(ds.shape, [2, 3, 4, 4]);
    std::fs::create_dir_all(d.path().join("c")).unwrap();
    let e = read_image_folder(d.path(), &opts).unwrap_err();
    assert!(
        matches!(e, Error::EmptyClass { .. }) && e.to_string().contains("c"),
        "{e}"
    );
    png(&d, "c/ok.png", 4, 4, 0);
    d.write("c/broken.png", b"\x89PNG but not really");
    let e = read_image_folder(d.path(), &opts).unwrap_err();
    assert!(matches!(e, Error::Decode { .. }), "{e}");
    assert!(e.to_string().contains("broken.png"), "{e}");
}

#[test]
fn image_folder_with_split_folders() {
    let d = TempDir::new("folder-split");
    png(&d, "train/a/1.png", 2, 2, 0);
    png(&d, "train/b/1.png", 2, 2, 0);
    png(&d, "val/a/1.png", 2, 2, 0);
    assert_eq!(Dataset::open(d.path()).unwrap().labels, vec![0, 1]);
    let te = Dataset::open_split(d.path(), Split::Test).unwrap();
    assert_eq!((te.len(), te.num_classes), (1, 1));
}

#[test]
fn balanced_subsets_are_deterministic() {
    let d = TempDir::new("subset");
    let labels: Vec<u8> = (0..60).map(|i| (i % 10) as u8).collect();
    d.write("train-images-idx3-ubyte", &idx_images(60, 1, 2));
    d.write("train-labels-idx1-ubyte", &idx_labels(&labels));
    let ds = Dataset::open(d.path()).unwrap();
    let a = ds.balanced_indices(3, 7).unwrap();
    assert_eq!(a, ds.balanced_indices(3, 7).unwrap());
    assert_ne!(a, ds.balanced_indices(3, 8).unwrap());
    assert!(a.windows(2).all(|w| w[0] < w[1]));
    let sub = ds.balanced_subset(3, 7).unwrap();
    assert_eq!(sub.len(), 30);
    for c in 0..10 {
        assert_eq!(sub.labels.iter().filter(|&&l| l == c).count(), 3);
    }
    assert_eq!(sub.image_bytes(0).unwrap(), ds.image_bytes(a[0]).unwrap());
    let e = ds.balanced_subset(7, 0).unwrap_err();
    assert!(
        e.to_string().contains("class 0 has 6 images, fewer than 7"),
        "{e}"
    );
    assert!(ds.subset(&[60]).is_err());
}

#[test]
fn raw_pixel_baseline_on_idx_files() {
    use tessera_ssl::eval::{raw_pixel_knn, KnnConfig};
    let d = TempDir::new("baseline");
    // Four distinct 1x2 images; the test split repeats two of them.
    let img = |px: &[u8]| {
        let mut v = Vec::new();
        for x in [0x803u32, (px.len() / 2) as u32, 1, 2] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        v.extend_from_slice(px);
        v
    };
    d.write(
        "train-images-idx3-ubyte",
        &img(&[255, 0, 0, 255, 200, 10, 10, 200]),
    );
    d.write("train-labels-idx1-ubyte", &idx_labels(&[0, 1, 0, 1]));
    d.write("t10k-images-idx3-ubyte", &img(&[0, 250, 240, 0]));
    d.write("t10k-labels-idx1-ubyte", &idx_labels(&[1, 0]));
    let tr = Dataset::open(d.path()).unwrap();
    let te = Dataset::open_split(d.path(), Split::Test).unwrap();
    let r = raw_pixel_knn(&tr, &te, None, &KnnConfig::with_k(2), &tessera_tensor::Cpu).unwrap();
    assert_eq!(r[0].predictions, vec![1, 0]);
    assert_eq!((r[0].top1, r[0].top5), (1.0, Some(1.0)));
}
