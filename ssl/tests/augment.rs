//! Augmentations: determinism under a seed, output shapes and value ranges, flip and color
//! correctness, crop-box statistics, 1-channel behaviour, batching.

use tessera_ssl::augment::*;
use tessera_ssl::Error;
use tessera_tensor::{Cpu, Rng};

/// A random image in [0, 1].
fn noise(c: usize, h: usize, w: usize, seed: u64) -> Image {
    let mut r = Rng::new(seed);
    Image::new(
        c,
        h,
        w,
        (0..c * h * w).map(|_| r.next_f64() as f32).collect(),
    )
    .unwrap()
}

fn in_unit_range(img: &Image) -> bool {
    img.data().iter().all(|v| (-1e-6..=1.0 + 1e-6).contains(v))
}

#[test]
fn dino_views_are_deterministic_with_the_right_shapes() {
    for c in [1, 3] {
        let img = noise(c, 28, 28, 1);
        let cfg = DinoAugConfig {
            local_crops_number: 6,
            normalize: None,
            ..DinoAugConfig::with_sizes(28, 12)
        };
        let dino = DataAugmentationDino::new(&cfg).unwrap();
        let a = dino.apply(&img, &mut Rng::new(42)).unwrap();
        let b = dino.apply(&img, &mut Rng::new(42)).unwrap();
        let other = dino.apply(&img, &mut Rng::new(43)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, other);
        assert_eq!(a.len(), 8);
        for (i, v) in a.iter().enumerate() {
            let s = if i < 2 { 28 } else { 12 };
            assert_eq!(v.shape(), [c, s, s]);
            assert!(in_unit_range(v), "view {i} leaves [0, 1]");
        }
    }
}

#[test]
fn byol_pair_and_normalization() {
    let img = noise(3, 40, 30, 2);
    let byol = ByolAugmentation::new(&ByolAugConfig::with_size(16)).unwrap();
    let [v1, v2] = byol.apply(&img, &mut Rng::new(0)).unwrap();
    assert_eq!((v1.shape(), v2.shape()), ([3, 16, 16], [3, 16, 16]));
    // ImageNet normalization maps [0, 1] to about [-2.12, 2.64].
    for v in [&v1, &v2] {
        assert!(v.data().iter().all(|x| (-2.2..=2.7).contains(x)));
    }
    // The ImageNet statistics do not fit a grayscale image: a clear error, no panic.
    let e = byol
        .apply(&noise(1, 20, 20, 3), &mut Rng::new(0))
        .unwrap_err();
    assert!(e.to_string().contains("3 channel statistics"), "{e}");
    let gray = ByolAugConfig {
        normalize: Some(Normalize::new(vec![0.286], vec![0.353]).unwrap()),
        ..ByolAugConfig::with_size(16)
    };
    let byol = ByolAugmentation::new(&gray).unwrap();
    assert!(byol.apply(&noise(1, 20, 20, 3), &mut Rng::new(0)).is_ok());
}

#[test]
fn flips() {
    let mut img = Image::new(1, 2, 3, vec![1., 2., 3., 4., 5., 6.]).unwrap();
    hflip(&mut img);
    assert_eq!(img.data(), &[3., 2., 1., 6., 5., 4.]);
    let orig = noise(3, 4, 5, 3);
    let mut f = orig.clone();
    assert!(RandomHorizontalFlip::new(1.0)
        .unwrap()
        .apply(&mut f, &mut Rng::new(0)));
    assert_eq!(f.at(2, 3, 0), orig.at(2, 3, 4));
    let mut g = orig.clone();
    assert!(!RandomHorizontalFlip::new(0.0)
        .unwrap()
        .apply(&mut g, &mut Rng::new(0)));
    assert_eq!(g, orig);
    // p = 0.5 flips about half the time.
    let t = RandomHorizontalFlip::new(0.5).unwrap();
    let mut r = Rng::new(9);
    let n = (0..2000).filter(|_| t.apply(&mut g, &mut r)).count();
    assert!((900..1100).contains(&n), "{n} flips of 2000");
}

#[test]
fn crop_boxes_stay_within_their_ranges() {
    let mut rng = Rng::new(7);
    for (scale, lo_mean, hi_mean) in [((0.08, 1.0), 0.35, 0.6), ((0.05, 0.4), 0.2, 0.25)] {
        let t = RandomResizedCrop::new(8, scale).unwrap();
        let (mut sum, n) = (0.0, 4000);
        for _ in 0..n {
            let b = t.params(100, 100, &mut rng);
            assert!(b.top + b.height <= 100 && b.left + b.width <= 100, "{b:?}");
            let area = (b.height * b.width) as f64 / 1e4;
            let ratio = b.width as f64 / b.height as f64;
            // Rounding w and h to integers moves area and ratio slightly off the ranges.
            assert!(area >= scale.0 * 0.9 && area <= scale.1 * 1.03, "{b:?}");
            assert!((0.75 * 0.96..=4.0 / 3.0 * 1.04).contains(&ratio), "{b:?}");
            sum += area;
        }
        let mean = sum / n as f64;
        assert!(
            lo_mean < mean && mean < hi_mean,
            "scale {scale:?}: mean area {mean}"
        );
    }
    // Positions are uniform: both extremes are reached for small crops.
    let t = RandomResizedCrop::new(8, (0.01, 0.01)).unwrap();
    let tops: Vec<usize> = (0..3000).map(|_| t.params(20, 20, &mut rng).top).collect();
    assert!(tops.contains(&0) && tops.contains(&18));
}

#[test]
fn grayscale_keeps_channels() {
    let one = noise(1, 5, 5, 4);
    let g = RandomGrayscale::new(1.0).unwrap();
    assert_eq!(g.apply(one.clone(), &mut Rng::new(0)), one);
    let rgb = noise(3, 5, 5, 4);
    let out = g.apply(rgb.clone(), &mut Rng::new(0));
    assert_eq!(out.channels(), 3);
    assert_eq!(out.plane(0), out.plane(1));
    assert_eq!(out.plane(1), out.plane(2));
    let want = 0.2989 * rgb.at(0, 1, 2) + 0.587 * rgb.at(1, 1, 2) + 0.114 * rgb.at(2, 1, 2);
    assert!((out.at(0, 1, 2) - want).abs() < 1e-6);
}

#[test]
fn color_adjustments() {
    // One channel: saturation and hue are no-ops; brightness scales and clamps.
    let one = noise(1, 4, 4, 5);
    let mut x = one.clone();
    adjust_saturation(&mut x, 0.1);
    adjust_hue(&mut x, 0.3);
    assert_eq!(x, one);
    adjust_brightness(&mut x, 3.0);
    assert!(in_unit_range(&x) && x.data().contains(&1.0));
    // Contrast 0 gives the mean gray everywhere.
    let mut y = one.clone();
    adjust_contrast(&mut y, 0.0);
    let mean = one.data().iter().sum::<f32>() / 16.0;
    assert!(y.data().iter().all(|v| (v - mean).abs() < 1e-6));
    // HSV round trip and a hue rotation of pure red by a third: green.
    let mut r = Rng::new(6);
    for _ in 0..200 {
        let (a, b, c) = (
            r.next_f64() as f32,
            r.next_f64() as f32,
            r.next_f64() as f32,
        );
        let (h, s, v) = rgb_to_hsv(a, b, c);
        let (a2, b2, c2) = hsv_to_rgb(h, s, v);
        assert!((a - a2).abs() < 1e-5 && (b - b2).abs() < 1e-5 && (c - c2).abs() < 1e-5);
    }
    let mut red = Image::new(3, 1, 1, vec![1.0, 0.0, 0.0]).unwrap();
    adjust_hue(&mut red, 1.0 / 3.0);
    assert!((red.data()[1] - 1.0).abs() < 1e-5 && red.data()[0] < 1e-5);
    // Jitter keeps [0, 1] and is deterministic.
    let j = ColorJitter::new(0.4, 0.4, 0.2, 0.1).unwrap();
    let rgb = noise(3, 6, 6, 7);
    let a = j.apply(rgb.clone(), &mut Rng::new(1));
    assert_eq!(a, j.apply(rgb.clone(), &mut Rng::new(1)));
    assert!(in_unit_range(&a) && a != rgb);
}

#[test]
fn blur_solarize_normalize() {
    let mut img = Image::new(1, 1, 4, vec![0.2, 0.5, 0.7, 0.49]).unwrap();
    solarize(&mut img, 0.5);
    assert_eq!(img.data(), &[0.2, 0.5, 0.3f32.max(1.0 - 0.7), 0.49]);
    let n = Normalize::new(vec![0.5], vec![0.25]).unwrap();
    let mut x = Image::new(3, 1, 1, vec![0.0, 0.5, 1.0]).unwrap();
    n.apply(&mut x).unwrap();
    assert_eq!(x.data(), &[-2.0, 0.0, 2.0]);
    // Blur with p = 0 leaves the image alone; p = 1 smooths it.
    let img = noise(3, 8, 8, 8);
    let b0 = GaussianBlur::new(0.0, (0.1, 2.0)).unwrap();
    assert_eq!(b0.apply(img.clone(), &mut Rng::new(0)), img);
    let b1 = GaussianBlur::new(1.0, (1.0, 1.0)).unwrap();
    let out = b1.apply(img.clone(), &mut Rng::new(0));
    let var = |i: &Image| {
        let m = i.data().iter().sum::<f32>() / i.data().len() as f32;
        i.data().iter().map(|v| (v - m) * (v - m)).sum::<f32>()
    };
    assert!(var(&out) < 0.5 * var(&img));
}

#[test]
fn bad_arguments_are_errors() {
    assert!(matches!(
        Image::new(2, 2, 2, vec![0.0; 8]),
        Err(Error::Config(_))
    ));
    assert!(Image::new(1, 2, 2, vec![0.0; 3]).is_err());
    assert!(RandomHorizontalFlip::new(1.5).is_err());
    assert!(RandomResizedCrop::new(8, (0.5, 0.1)).is_err());
    assert!(RandomResizedCrop::new(0, (0.1, 0.5)).is_err());
    assert!(ColorJitter::new(0.4, -1.0, 0.0, 0.0).is_err());
    assert!(ColorJitter::new(0.0, 0.0, 0.0, 0.6).is_err());
    assert!(GaussianBlur::new(0.5, (0.0, 1.0)).is_err());
    assert!(Normalize::new(vec![0.5], vec![0.0]).is_err());
    let e = Normalize::new(vec![0.5, 0.5], vec![1.0]).unwrap_err();
    assert!(
        e.to_string().starts_with("invalid argument: Normalize"),
        "{e}"
    );
}

#[test]
fn batches_group_views_by_resolution() {
    let cfg = DinoAugConfig {
        local_crops_number: 3,
        normalize: None,
        ..DinoAugConfig::with_sizes(16, 8)
    };
    let dino = DataAugmentationDino::new(&cfg).unwrap();
    let mut rng = Rng::new(3);
    let samples: Vec<Vec<Image>> = (0..4)
        .map(|s| dino.apply(&noise(3, 20, 20, s), &mut rng).unwrap())
        .collect();
    let per_view = collate_views(&samples, &Cpu).unwrap();
    assert_eq!(per_view.len(), 5);
    assert_eq!(per_view[0].shape(), &[4, 3, 16, 16]);
    assert_eq!(per_view[4].shape(), &[4, 3, 8, 8]);
    let groups = batch_by_resolution(&samples, &Cpu).unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(
        (groups[0].views.clone(), groups[1].views.clone()),
        (0..2, 2..5)
    );
    assert_eq!(groups[1].batch.shape(), &[12, 3, 8, 8]);
    // View-major: row k * b + i is view (start + k) of sample i.
    let row = groups[1].batch.narrow(0, 4 + 2, 1).unwrap(); // k = 1, i = 2
    assert_eq!(row.to_vec::<f32>().unwrap(), samples[2][3].data());
    // Ragged input is an error.
    let mut bad = samples.clone();
    bad[1].pop();
    assert!(collate_views(&bad, &Cpu).is_err());
    assert!(batch_by_resolution::<Cpu>(&[], &Cpu).is_err());
}
