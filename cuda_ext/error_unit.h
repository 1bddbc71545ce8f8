// prednet2 error unit: the per-element math, shared by the C++ CPU loop (error_unit.cpp) and the CUDA kernels
// (error_unit_cuda.cu). Both paths call these functions, so the CPU tests exercise the kernels' own arithmetic.
//
// Notation, per sample b, channel c < C, pixel i:
//   d = target - pred
//   E[b, c, i]     = relu(d)  (pos: what arrived but was not predicted)
//   E[b, C + c, i] = relu(-d) (neg: what was predicted but did not arrive)
//   loss[b] = sum_{k < 2C, i} E[b, k, i] * w[b, i] / (2C * sum_i w[b, i]);  loss[b] = 0 when 2C * sum_i w[b, i] == 0
//
// Sub-gradient convention: at d == 0 both relus have gradient 0 (as torch.relu's backward), so grad_pred and
// grad_target are 0 there. grad_target == -grad_pred everywhere.
#pragma once

#include <cstdint>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define HOST_DEVICE_INLINE __host__ __device__ __forceinline__
#else
#define HOST_DEVICE_INLINE inline
#endif

namespace prednet2 {

// Forward, one element: pos = relu(t - p), neg = relu(p - t), in the accumulation type acc_t (float for
// float/half/bfloat16, double for double). Written so that NaN propagates into both outputs, like torch.relu,
// and d == 0 gives +0 in both (never -0).
template <typename acc_t>
HOST_DEVICE_INLINE void error_unit_forward_elem(acc_t p, acc_t t, acc_t& pos, acc_t& neg) {
  const acc_t d = t - p;
  pos = d <= acc_t(0) ? acc_t(0) : d;
  neg = d >= acc_t(0) ? acc_t(0) : -d;
}

// Backward, one element: returns grad_target (grad_pred is its negation).
//   g_pos, g_neg: upstream gradients of E[b, c, i] and E[b, C + c, i] (0 when E got no gradient);
//   g_loss_w:     d loss_total / d E[b, k, i] coming through the loss, = grad_loss[b] * w[b, i] * inv_denom[b].
// d E_pos / d t = [d > 0], d E_neg / d t = -[d < 0]; the loss term reaches both E halves.
template <typename acc_t>
HOST_DEVICE_INLINE acc_t error_unit_backward_elem(acc_t p, acc_t t, acc_t g_pos, acc_t g_neg, acc_t g_loss_w) {
  // Select the upstream gradient first, then one add: no floating-point op sits under a branch, so the compiler
  // turns the selects into blends and vectorises the loop (a branch around an add blocks that under -ftrapping-math).
  const acc_t d = t - p;
  const acc_t s = (d > acc_t(0) ? g_pos : g_neg) + g_loss_w;
  acc_t g = d < acc_t(0) ? -s : acc_t(0);
  g = d > acc_t(0) ? s : g;
  return g;
}

// 1 / (2C * sum_i w[b, i]), or 0 when the denominator is 0 (the sample then has loss 0 and no loss gradient).
template <typename acc_t>
HOST_DEVICE_INLINE acc_t error_unit_inv_denom(acc_t weight_sum, int64_t channels) {
  const acc_t denom = acc_t(2 * channels) * weight_sum;
  return denom == acc_t(0) ? acc_t(0) : acc_t(1) / denom;
}

}  // namespace prednet2

// ---- Host-only helpers shared by the CPU and CUDA registrations (argument checks, output allocation). ----------
#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <optional>

namespace prednet2 {

// The loss (and grad_loss) dtype: float32 for float32/float16/bfloat16 inputs, float64 for float64.
inline at::ScalarType error_unit_acc_dtype(at::ScalarType t) {
  return t == at::kDouble ? at::kDouble : at::kFloat;
}

inline void check_error_unit_inputs(const char* op, const at::Tensor& pred, const at::Tensor& target,
                                    const std::optional<at::Tensor>& weight) {
  TORCH_CHECK(pred.dim() == 4, op, ": pred must be (B, C, H, W), got ", pred.sizes());
  TORCH_CHECK(target.sizes() == pred.sizes(), op, ": target ", target.sizes(), " must have pred's shape ",
              pred.sizes());
  TORCH_CHECK(target.scalar_type() == pred.scalar_type(), op, ": target dtype ", target.scalar_type(),
              " must equal pred dtype ", pred.scalar_type());
  TORCH_CHECK(target.device() == pred.device(), op, ": pred and target must be on the same device");
  const auto st = pred.scalar_type();
  TORCH_CHECK(st == at::kFloat || st == at::kDouble || st == at::kHalf || st == at::kBFloat16, op,
              ": dtype must be float32, float64, float16 or bfloat16, got ", st);
  if (weight.has_value()) {
    const auto& w = *weight;
    TORCH_CHECK(w.dim() == 4 && w.size(0) == pred.size(0) && w.size(1) == 1 && w.size(2) == pred.size(2) &&
                    w.size(3) == pred.size(3),
                op, ": weight must be (B, 1, H, W) = (", pred.size(0), ", 1, ", pred.size(2), ", ", pred.size(3),
                "), got ", w.sizes());
    TORCH_CHECK(w.scalar_type() == st, op, ": weight dtype ", w.scalar_type(), " must equal pred dtype ", st);
    TORCH_CHECK(w.device() == pred.device(), op, ": weight must be on pred's device");
  }
}

inline void check_error_unit_backward_inputs(const std::optional<at::Tensor>& grad_E, const at::Tensor& grad_loss,
                                             const at::Tensor& pred) {
  if (grad_E.has_value()) {
    const auto& g = *grad_E;
    TORCH_CHECK(g.dim() == 4 && g.size(0) == pred.size(0) && g.size(1) == 2 * pred.size(1) &&
                    g.size(2) == pred.size(2) && g.size(3) == pred.size(3),
                "error_unit_backward: grad_E must be (B, 2C, H, W), got ", g.sizes(), " for pred ", pred.sizes());
    TORCH_CHECK(g.device() == pred.device(), "error_unit_backward: grad_E must be on pred's device");
  }
  TORCH_CHECK(grad_loss.dim() == 1 && grad_loss.size(0) == pred.size(0),
              "error_unit_backward: grad_loss must be (B,), got ", grad_loss.sizes());
  TORCH_CHECK(grad_loss.device() == pred.device(), "error_unit_backward: grad_loss must be on pred's device");
}

}  // namespace prednet2
