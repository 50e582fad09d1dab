//! Weighted k-NN on hand-checkable features.

use tessera_autograd::Var;
use tessera_ssl::eval::{knn_classifier, pixel_features, KnnConfig};
use tessera_ssl::l2_normalize;
use tessera_tensor::{Cpu, Tensor};

fn t(v: &[f32], rows: usize) -> Tensor<Cpu> {
    Tensor::from_vec(v.to_vec(), &[rows, v.len() / rows], &Cpu).unwrap()
}

#[test]
fn weights_decide_between_classes() {
    // Train: one class-0 point at angle 0, two class-1 points at ~60 degrees.
    let train = t(&[1.0, 0.0, 0.5, 0.866, 0.5, 0.866], 3);
    // Test at 10 degrees: cos = 0.985 to class 0 and 0.643 to class 1. Votes at T = 0.07:
    // exp(0.985/0.07) = 1.3e6 vs 2 * exp(0.643/0.07) = 2 * 9.7e3, so class 0 wins with k = 3
    // despite being outnumbered; at T = 10 the votes are ~1.10 vs 2 * 1.07 and class 1 wins.
    let test = t(&[0.985, 0.174], 1);
    let cfg = |temperature| KnnConfig {
        ks: vec![1, 3],
        temperature,
        chunk_size: 8,
    };
    let r = knn_classifier(&train, &[0, 1, 1], &test, &[0], 2, &cfg(0.07)).unwrap();
    assert_eq!((r[0].predictions[0], r[1].predictions[0]), (0, 0));
    let r = knn_classifier(&train, &[0, 1, 1], &test, &[0], 2, &cfg(10.0)).unwrap();
    assert_eq!((r[0].predictions[0], r[1].predictions[0]), (0, 1));
    assert_eq!((r[0].top1, r[1].top1), (1.0, 0.0));
}

#[test]
fn scale_does_not_matter_and_top5_counts() {
    // Six classes on the axes of R^6; test points are scaled copies, one mislabeled.
    let mut eye = vec![0.0f32; 36];
    for i in 0..6 {
        eye[i * 7] = 1.0;
    }
    let train = t(&eye, 6);
    let test = t(&eye.iter().map(|v| v * 5.0).collect::<Vec<_>>(), 6);
    let labels: Vec<u32> = (0..6).collect();
    let mut test_labels = labels.clone();
    test_labels[5] = 0; // predicted 5, true 0
    let r = knn_classifier(
        &train,
        &labels,
        &test,
        &test_labels,
        6,
        &KnnConfig::with_k(6),
    )
    .unwrap();
    assert_eq!(r[0].predictions, vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(r[0].top1, 5.0 / 6.0);
    // Sample 5: votes exp(1/T) for class 5 and exp(0) for the others; ties sort by class id,
    // so the top 5 are 5, 0, 1, 2, 3: class 0 is in it.
    assert_eq!(r[0].top5, Some(1.0));
}

#[test]
fn errors_and_normalization() {
    let train = t(&[1.0, 0.0, 0.0, 1.0], 2);
    let test = t(&[1.0, 1.0], 1);
    let run = |cfg: KnnConfig, labels: &[u32]| knn_classifier(&train, labels, &test, &[0], 2, &cfg);
    assert!(run(KnnConfig::with_k(3), &[0, 1]).is_err()); // k > n_train
    assert!(run(KnnConfig::with_k(0), &[0, 1]).is_err());
    assert!(run(KnnConfig::with_k(1), &[0, 2]).is_err()); // label out of range
    assert!(run(KnnConfig::with_k(1), &[0]).is_err()); // count mismatch
    let bad_t = KnnConfig {
        temperature: 0.0,
        ..KnnConfig::with_k(1)
    };
    assert!(run(bad_t, &[0, 1]).is_err());
    let n = l2_normalize(&Var::constant(t(&[3.0, 4.0, 0.0, 0.0], 2)), 1e-12).unwrap();
    assert_eq!(n.value().to_vec::<f32>().unwrap(), vec![0.6, 0.8, 0.0, 0.0]);
}

#[test]
fn raw_pixel_features() {
    let f = pixel_features::<Cpu>(&[0, 255, 51, 102], 2, 1, None, &Cpu).unwrap();
    assert_eq!(f.shape(), &[2, 2]);
    assert_eq!(f.to_vec::<f32>().unwrap(), vec![0.0, 1.0, 0.2, 0.4]);
    assert!(pixel_features::<Cpu>(&[0, 1, 2], 2, 1, None, &Cpu).is_err());
}
