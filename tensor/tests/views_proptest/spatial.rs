//! Spatial ops on permuted (channels-last) inputs: conv2d, pooling, bicubic, and their backwards.

use crate::compare::{config, dense, same};
use crate::inputs::{contiguous, transposed_of};
use proptest::prelude::*;
use tessera_tensor::{ConvOptions, Pool2dOptions};

proptest! {
    #![proptest_config(config())]

    #[test]
    fn conv2d_on_permuted_inputs(
        (n, cg, g, h, wd) in (1usize..=2, 1usize..=2, 1usize..=2, 3usize..=6, 3usize..=6),
        (ocg, kh, kw) in (1usize..=2, 1usize..=3, 1usize..=3),
        (stride, pad, dil) in (1usize..=2, 0usize..=1, 1usize..=2),
        seed in any::<u64>(),
    ) {
        let (c, oc) = (cg * g, ocg * g);
        let o = ConvOptions {
            stride: [stride, 1],
            padding: [pad, pad],
            dilation: [dil, 1],
            groups: g,
        };
        // Channels-last storage, permuted to NCHW and back (a common view in practice).
        let x = contiguous(&[n, h, wd, c], seed).permute(&[0, 3, 1, 2]).unwrap();
        let w = contiguous(&[kh, kw, cg, oc], seed ^ 1).permute(&[3, 2, 0, 1]).unwrap();
        let (xc, wc) = (dense(&x), dense(&w));
        let Ok(p) = xc.conv2d_params(wc.shape(), &o) else {
            return Ok(()); // kernel span larger than the padded input
        };
        let y = x.conv2d(&w, None, &o).unwrap();
        same("conv2d", &y, &xc.conv2d(&wc, None, &o).unwrap())?;
        let nhwc = y.permute(&[0, 2, 3, 1]).unwrap().contiguous().unwrap();
        let back = nhwc.permute(&[0, 3, 1, 2]).unwrap();
        same("permuted back", &back, &y)?;
        let gshape = y.shape().to_vec();
        let g_view = transposed_of(&gshape, seed ^ 2);
        let gc = dense(&g_view);
        same("grad input", &g_view.conv2d_backward_input(&w, &p).unwrap(),
            &gc.conv2d_backward_input(&wc, &p).unwrap())?;
        same("grad weight", &g_view.conv2d_backward_weight(&x, &p).unwrap(),
            &gc.conv2d_backward_weight(&xc, &p).unwrap())?;
    }

    #[test]
    fn pooling_honors_views(
        (n, c, h, w) in (1usize..=2, 1usize..=3, 2usize..=6, 2usize..=6),
        (k, stride, pad) in (1usize..=3, 1usize..=2, 0usize..=1),
        (oh, ow) in (1usize..=4, 1usize..=4),
        include in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let x = contiguous(&[w, c, n, h], seed).permute(&[2, 1, 3, 0]).unwrap(); // [n, c, h, w]
        let xc = dense(&x);
        let mut o = Pool2dOptions::new(k.min(h).min(w), stride, pad);
        o.count_include_pad = include;
        if let Ok(p) = xc.pool2d_params(&o) {
            let (v, i) = x.max_pool2d(&o).unwrap();
            let (vc, ic) = xc.max_pool2d(&o).unwrap();
            same("max values", &v, &vc)?;
            same("max indices", &i, &ic)?;
            let gv = transposed_of(v.shape(), seed ^ 1);
            same("max backward", &gv.max_pool2d_backward(&i, [h, w]).unwrap(),
                &dense(&gv).max_pool2d_backward(&ic, [h, w]).unwrap())?;
            same("avg", &x.avg_pool2d(&o).unwrap(), &xc.avg_pool2d(&o).unwrap())?;
            same("avg backward", &gv.avg_pool2d_backward(&p).unwrap(),
                &dense(&gv).avg_pool2d_backward(&p).unwrap())?;
        }
        same("adaptive", &x.adaptive_avg_pool2d([oh, ow]).unwrap(),
            &xc.adaptive_avg_pool2d([oh, ow]).unwrap())?;
        let ga = transposed_of(&[n, c, oh, ow], seed ^ 2);
        same("adaptive backward", &ga.adaptive_avg_pool2d_backward([h, w]).unwrap(),
            &dense(&ga).adaptive_avg_pool2d_backward([h, w]).unwrap())?;
    }

    #[test]
    fn bicubic_honors_views(
        (n, c, h, w) in (1usize..=2, 1usize..=2, 1usize..=5, 1usize..=5),
        (oh, ow) in (1usize..=7, 1usize..=7),
        align in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let x = contiguous(&[h, n, w, c], seed).permute(&[1, 3, 0, 2]).unwrap();
        let xc = dense(&x);
        same("bicubic", &x.interpolate_bicubic(Some([oh, ow]), None, align).unwrap(),
            &xc.interpolate_bicubic(Some([oh, ow]), None, align).unwrap())?;
        let p = xc.resize_params(Some([oh, ow]), None, align).unwrap();
        let g = transposed_of(&[n, c, oh, ow], seed ^ 1);
        same("bicubic backward", &g.interpolate_bicubic_backward(&p).unwrap(),
            &dense(&g).interpolate_bicubic_backward(&p).unwrap())?;
    }
}
