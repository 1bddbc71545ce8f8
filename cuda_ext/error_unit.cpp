// prednet2::error_unit: schema definition (TORCH_LIBRARY) and the CPU implementation.
//
// Forward is one pass over (B, C, H*W): each (b, c) row writes its two E rows and one partial loss sum; the per-sample
// reduction then adds the C partial sums of a sample in a fixed order, so the result does not depend on the thread
// count (no atomics). Backward is one pass too. Inputs are made contiguous (a copy when they are not).
// The per-element math lives in error_unit.h and is shared with the CUDA kernels.
#include <Python.h>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <torch/library.h>

#include <type_traits>
#include <vector>

#include "error_unit.h"

// `import prednet2._C` loads this library, which runs the TORCH_LIBRARY registrations below. The module itself has
// no Python functions: everything is reached through torch.ops.prednet2.
extern "C" {
PyMODINIT_FUNC PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", "prednet2 error-unit op (torch.ops.prednet2)",
                                          -1, nullptr};
  return PyModule_Create(&module_def);
}
}

namespace prednet2 {
namespace {

// Rows of at least this many elements per parallel chunk, so small maps are not split into tiny tasks.
constexpr int64_t kGrainElems = 16384;

template <typename F>
void with_bool(bool v, F&& f) {
  if (v) {
    f(std::true_type{});
  } else {
    f(std::false_type{});
  }
}

// One (b, c) row: writes E_pos and E_neg, returns sum_i (pos + neg) * w[i]. A simple contiguous loop the compiler
// vectorises (float/double; half types go through scalar conversions).
template <typename scalar_t, typename acc_t, bool kHasWeight>
inline acc_t forward_row(const scalar_t* __restrict p, const scalar_t* __restrict t, const scalar_t* __restrict w,
                         scalar_t* __restrict e_pos, scalar_t* __restrict e_neg, int64_t n) {
  acc_t sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) {
    acc_t pos, neg;
    error_unit_forward_elem<acc_t>(static_cast<acc_t>(p[i]), static_cast<acc_t>(t[i]), pos, neg);
    e_pos[i] = static_cast<scalar_t>(pos);
    e_neg[i] = static_cast<scalar_t>(neg);
    if constexpr (kHasWeight) {
      sum += (pos + neg) * static_cast<acc_t>(w[i]);
    } else {
      sum += pos + neg;
    }
  }
  return sum;
}

// One (b, c) row of the backward: grad_pred = -g, grad_target = g (written only when needed).
template <typename scalar_t, typename acc_t, bool kHasWeight, bool kHasGradE, bool kNeedTarget>
inline void backward_row(const scalar_t* __restrict p, const scalar_t* __restrict t, const scalar_t* __restrict w,
                         const scalar_t* __restrict g_pos, const scalar_t* __restrict g_neg, acc_t loss_scale,
                         scalar_t* __restrict grad_p, scalar_t* __restrict grad_t, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    acc_t g_loss_w = loss_scale;
    if constexpr (kHasWeight) g_loss_w *= static_cast<acc_t>(w[i]);
    acc_t gp = 0, gn = 0;
    if constexpr (kHasGradE) {
      gp = static_cast<acc_t>(g_pos[i]);
      gn = static_cast<acc_t>(g_neg[i]);
    }
    const acc_t g = error_unit_backward_elem<acc_t>(static_cast<acc_t>(p[i]), static_cast<acc_t>(t[i]), gp, gn,
                                                    g_loss_w);
    grad_p[i] = static_cast<scalar_t>(-g);
    if constexpr (kNeedTarget) grad_t[i] = static_cast<scalar_t>(g);
  }
}

// sum_i w[b, i] per sample (H*W when there is no weight), in the accumulation type.
template <typename scalar_t, typename acc_t>
std::vector<acc_t> weight_sums(const scalar_t* w, int64_t B, int64_t HW) {
  std::vector<acc_t> out(B, static_cast<acc_t>(HW));
  if (w == nullptr) return out;
  at::parallel_for(0, B, std::max<int64_t>(1, kGrainElems / std::max<int64_t>(HW, 1)), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const scalar_t* wb = w + b * HW;
      acc_t s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t i = 0; i < HW; ++i) s += static_cast<acc_t>(wb[i]);
      out[b] = s;
    }
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> error_unit_cpu(const at::Tensor& pred_in, const at::Tensor& target_in,
                                                  const std::optional<at::Tensor>& weight_in) {
  check_error_unit_inputs("prednet2::error_unit", pred_in, target_in, weight_in);
  const at::Tensor pred = pred_in.contiguous();
  const at::Tensor target = target_in.contiguous();
  const at::Tensor weight = weight_in.has_value() ? weight_in->contiguous() : at::Tensor();
  const int64_t B = pred.size(0), C = pred.size(1), HW = pred.size(2) * pred.size(3);

  at::Tensor E = at::empty({B, 2 * C, pred.size(2), pred.size(3)}, pred.options());
  at::Tensor loss = at::empty({B}, pred.options().dtype(error_unit_acc_dtype(pred.scalar_type())));

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, pred.scalar_type(), "error_unit_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* p = pred.const_data_ptr<scalar_t>();
    const scalar_t* t = target.const_data_ptr<scalar_t>();
    const scalar_t* w = weight.defined() ? weight.const_data_ptr<scalar_t>() : nullptr;
    scalar_t* e = E.mutable_data_ptr<scalar_t>();
    std::vector<acc_t> row_sum(B * C);
    const int64_t grain = std::max<int64_t>(1, kGrainElems / std::max<int64_t>(HW, 1));

    with_bool(w != nullptr, [&](auto has_w) {
      at::parallel_for(0, B * C, grain, [&](int64_t r0, int64_t r1) {
        for (int64_t row = r0; row < r1; ++row) {
          const int64_t b = row / C, c = row % C;
          scalar_t* e_pos = e + (b * 2 * C + c) * HW;  // E[b, c]
          row_sum[row] = forward_row<scalar_t, acc_t, decltype(has_w)::value>(
              p + row * HW, t + row * HW, w == nullptr ? nullptr : w + b * HW, e_pos, e_pos + C * HW, HW);
        }
      });
    });

    // Deterministic per-sample reduction: fixed order over c, in double.
    const std::vector<acc_t> wsum = weight_sums<scalar_t, acc_t>(w, B, HW);
    acc_t* l = loss.mutable_data_ptr<acc_t>();
    for (int64_t b = 0; b < B; ++b) {
      double num = 0;
      for (int64_t c = 0; c < C; ++c) num += static_cast<double>(row_sum[b * C + c]);
      const acc_t inv = error_unit_inv_denom<acc_t>(wsum[b], C);
      l[b] = inv == acc_t(0) ? acc_t(0) : static_cast<acc_t>(num) * inv;
    }
  });
  return {E, loss};
}

std::tuple<at::Tensor, at::Tensor> error_unit_backward_cpu(const std::optional<at::Tensor>& grad_E_in,
                                                           const at::Tensor& grad_loss_in, const at::Tensor& pred_in,
                                                           const at::Tensor& target_in,
                                                           const std::optional<at::Tensor>& weight_in,
                                                           bool need_grad_target) {
  check_error_unit_inputs("prednet2::error_unit_backward", pred_in, target_in, weight_in);
  check_error_unit_backward_inputs(grad_E_in, grad_loss_in, pred_in);
  const at::Tensor pred = pred_in.contiguous();
  const at::Tensor target = target_in.contiguous();
  const at::Tensor weight = weight_in.has_value() ? weight_in->contiguous() : at::Tensor();
  const at::Tensor grad_E = grad_E_in.has_value() ? grad_E_in->to(pred.scalar_type()).contiguous() : at::Tensor();
  const at::Tensor grad_loss = grad_loss_in.to(error_unit_acc_dtype(pred.scalar_type())).contiguous();
  const int64_t B = pred.size(0), C = pred.size(1), HW = pred.size(2) * pred.size(3);

  at::Tensor grad_pred = at::empty_like(pred);
  at::Tensor grad_target = need_grad_target ? at::empty_like(pred) : at::empty({0}, pred.options());

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, pred.scalar_type(), "error_unit_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* p = pred.const_data_ptr<scalar_t>();
    const scalar_t* t = target.const_data_ptr<scalar_t>();
    const scalar_t* w = weight.defined() ? weight.const_data_ptr<scalar_t>() : nullptr;
    const scalar_t* ge = grad_E.defined() ? grad_E.const_data_ptr<scalar_t>() : nullptr;
    const acc_t* gl = grad_loss.const_data_ptr<acc_t>();
    scalar_t* gp = grad_pred.mutable_data_ptr<scalar_t>();
    scalar_t* gt = need_grad_target ? grad_target.mutable_data_ptr<scalar_t>() : nullptr;

    // d loss[b] / d E[b, k, i] = w[b, i] / (2C sum w[b]); times grad_loss[b].
    const std::vector<acc_t> wsum = weight_sums<scalar_t, acc_t>(w, B, HW);
    std::vector<acc_t> scale(B);
    for (int64_t b = 0; b < B; ++b) scale[b] = gl[b] * error_unit_inv_denom<acc_t>(wsum[b], C);
    const int64_t grain = std::max<int64_t>(1, kGrainElems / std::max<int64_t>(HW, 1));

    with_bool(w != nullptr, [&](auto has_w) {
      with_bool(ge != nullptr, [&](auto has_ge) {
        with_bool(gt != nullptr, [&](auto need_t) {
          at::parallel_for(0, B * C, grain, [&](int64_t r0, int64_t r1) {
            for (int64_t row = r0; row < r1; ++row) {
              const int64_t b = row / C, c = row % C;
              const scalar_t* g_pos = ge == nullptr ? nullptr : ge + (b * 2 * C + c) * HW;
              backward_row<scalar_t, acc_t, decltype(has_w)::value, decltype(has_ge)::value,
                           decltype(need_t)::value>(
                  p + row * HW, t + row * HW, w == nullptr ? nullptr : w + b * HW, g_pos,
                  g_pos == nullptr ? nullptr : g_pos + C * HW, scale[b], gp + row * HW,
                  gt == nullptr ? nullptr : gt + row * HW, HW);
            }
          });
        });
      });
    });
  });
  return {grad_pred, grad_target};
}

}  // namespace

TORCH_LIBRARY(prednet2, m) {
  m.def("error_unit(Tensor pred, Tensor target, Tensor? weight) -> (Tensor E, Tensor loss)");
  // grad_E is None when E got no gradient (the usual case: only the loss is back-propagated). grad_target is an
  // empty tensor when need_grad_target is false, so no memory is written for it.
  m.def(
      "error_unit_backward(Tensor? grad_E, Tensor grad_loss, Tensor pred, Tensor target, Tensor? weight, "
      "bool need_grad_target) -> (Tensor grad_pred, Tensor grad_target)");
}

TORCH_LIBRARY_IMPL(prednet2, CPU, m) {
  m.impl("error_unit", &error_unit_cpu);
  m.impl("error_unit_backward", &error_unit_backward_cpu);
}

}  // namespace prednet2
