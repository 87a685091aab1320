"""The one vocabulary: every finding code and remedy id, with what it means.

Architecture checks and log checks use the same codes, severities and remedy
ids. Codes and ids are public contract: add, never rename. The README's
reference and the service's ``/v1/catalog`` are made from this module.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    title: str
    description: str


FINDINGS: dict[str, Entry] = {
    "vanishing_gradient": Entry(
        "Vanishing gradient",
        "The backward signal ||dL/dh|| shrinks exponentially from the last hidden layer to the first "
        "(per-layer factor below 1: saturating activations, too-small weights, depth without skips or "
        "normalisation), so early layers barely learn. A drop that only layer scales starting small "
        "cause (the network is healthy re-simulated with them at 1) is a note: they are learned gates "
        "that open in the first steps."),
    "exploding_gradient": Entry(
        "Exploding gradient",
        "The backward signal (or the forward activations) grow exponentially with depth (per-layer gain "
        "above 1: weights too large for the activation, unnormalised residual sums), ending in huge updates, "
        "overflow and NaN. Growth that only normalised (scale-invariant) layers receive is a note: "
        "they absorb it."),
    "saturation": Entry(
        "Saturated units",
        "Many sigmoid/tanh/hardtanh units sit in their flat tails, where the derivative is near zero."),
    "dead_units": Entry(
        "Dead ReLU units",
        "ReLU units that output 0 for every input of the batch; their gradient is 0, so they never recover."),
    "nonfinite": Entry(
        "NaN or Inf values",
        "A NaN or Inf appears in the forward or backward pass; the evidence names the first layer where it does, "
        "or the loss, where a loss on probabilities makes it from finite outputs (the output/loss pairing)."),
    "vanishing_through_time": Entry(
        "Vanishing gradient through time",
        "In a recurrent layer, ||dL/dh_t|| shrinks exponentially towards the first time steps, so long-range "
        "dependencies cannot be learnt. In a gated cell (LSTM, GRU) it is at most a warning, and a note where "
        "its gates keep as much as default ones: they learn to keep memory longer, and the evidence gives the "
        "memory horizon they start with; a warning again past 1,000 steps learnt through the recurrence alone, "
        "longer than gated cells learn dependencies in practice."),
    "exploding_through_time": Entry(
        "Exploding gradient through time",
        "In a recurrent layer, ||dL/dh_t|| grows exponentially towards the first time steps; training "
        "without clipping turns NaN."),
    "post_ln_depth_risk": Entry(
        "Deep Post-LN Transformer",
        "A Post-LN Transformer stack deep enough that its large last-layer gradients at initialisation make "
        "training diverge without learning-rate warm-up (Xiong et al. 2020)."),
    "large_updates": Entry(
        "Updates too large for the weights",
        "One optimizer step changes a layer's weights by a large fraction of their norm (update-to-weight "
        "ratio ||delta W|| / ||W|| far above the healthy ~1e-3 per step): the learning rate is too large for "
        "this network and optimizer, and training oscillates, diverges or kills units. Measured on the "
        "first step from the spec's optimizer, or from a log's update_ratio series."),
    "small_updates": Entry(
        "Updates too small to train",
        "Even the fastest-moving layer changes by a tiny fraction of its weights per optimizer step "
        "(update-to-weight ratio ||delta W|| / ||W|| three decades or more below the healthy ~1e-3): the "
        "learning rate is too small for this network and optimizer, and training crawls. Measured on the "
        "first step from the spec's optimizer, or from a log's update_ratio series; in an RL run, a KL to the "
        "reference policy that stays exactly 0 says no step changed the model at all, as does a loss printed in "
        "full that repeats exactly (one validation value at evaluation after evaluation, the same batch losses "
        "every epoch)."),
    "symmetric_weights": Entry(
        "Weights all equal",
        "Every weight of a layer starts at the same nonzero value (a constant or `ones` initialiser): each of its "
        "units computes the same function of the same input and gets the same gradient, so they stay identical "
        "for good and the layer is as wide as one unit."),
    "small_batch_statistics": Entry(
        "Batch statistics over too few values",
        "A batch norm in training normalises each channel over the batch (times the positions): over 2 values "
        "its output is +-1 whatever its input, and over a handful its statistics are mostly noise, so the network "
        "computes little of its input and its gradients are dominated by near-ties (Ioffe and Szegedy 2015; Wu and "
        "He 2018, Group Normalization). The other findings of such a check describe that degenerate network."),
    "output_loss_mismatch": Entry(
        "Loss takes probabilities the output does not give",
        "The loss is told the model outputs probabilities (Keras' from_logits=False, its default) but the "
        "last layer has no softmax or sigmoid: Keras' categorical cross-entropy divides the raw outputs by their sum "
        "and clips them to [1e-7, 1 - 1e-7], and every sample whose output is negative, zero or near a zero sum is "
        "clipped and gets no gradient at all; its binary cross-entropy clips each raw output to [1e-7, 1 - 1e-7], "
        "and every output outside (0, 1) gets none. Measured as the fraction of the simulated batch the loss gives no gradient; "
        "all of it when the output layer receives exactly none (a softmax over a single unit is the constant 1). "
        "The other way round too: a loss compiled on logits (from_logits=True) over a softmax or sigmoid output "
        "applies that activation twice, and the loss can never fall below ln(1 + (k-1)/e) for k classes; "
        "measured as that floor's share of the loss at chance. And a bounded output activation (a ReLU, a sigmoid, "
        "a tanh; a softmax, whose rows are distributions) under a regression loss: targets outside its range cannot "
        "be reached. And a softmax over more than two units under binary cross-entropy (Keras' Dense(k, softmax) "
        "compiled with binary_crossentropy): the loss scores each unit as an independent probability while the "
        "softmax ties them to sum 1, so multi-hot targets cannot be reached and binary accuracy on one-hot targets "
        "is inflated to (k-1)/k for a model that predicts nothing."),
    # Findings from training logs (the log check).
    "gradient_spike": Entry(
        "Gradient-norm spikes",
        "Isolated gradient-norm values far above the run's robust rolling baseline; the evidence says whether "
        "the run recovered after each."),
    "dead_layer": Entry(
        "Dead layer",
        "A layer whose logged gradient norm is exactly zero: it receives no gradient and does not learn."),
    "zero_gradient": Entry(
        "Steps without gradient",
        "The total gradient norm is exactly zero on a share of the steps, so those steps update nothing "
        "(RL batches without reward variance, fully masked batches, a detached graph)."),
    "clipping_saturated": Entry(
        "Clipping active on most steps",
        "The pre-clip gradient norm is above the clipping threshold on most steps, so clipping is hiding "
        "an explosion rather than catching rare spikes."),
    "loss_spike": Entry(
        "Loss spikes",
        "Isolated loss values far above the rolling baseline; the evidence says whether the run recovered."),
    "loss_divergence": Entry(
        "Loss divergence",
        "The training loss rises for good after reaching its minimum (too large a learning rate, or an "
        "explosion surfacing in the loss); or, beside a training loss too short to judge that does not "
        "fall, a validation loss never comes back to its first evaluation; or a loss of 1e15 or more, "
        "whatever its history (one on that scale from its first point has targets or inputs far out of scale)."),
    "loss_plateau": Entry(
        "Loss plateau",
        "The training loss stopped improving: late in a run this is convergence or a decayed learning rate; "
        "early it means the model is not learning."),
    "negative_learning_rate": Entry(
        "Negative or zero learning rate",
        "The optimizer's learning rate is negative or zero: a negative rate steps up the gradient (gradient "
        "ascent), so the loss rises from the first step; a zero rate does not train at all."),
    "loss_oscillation": Entry(
        "Loss oscillation",
        "The training loss swings widely around its trend from step to step instead of settling."),
    "reward_collapse": Entry(
        "Return collapsed",
        "A reinforcement-learning run's episode return (or success rate) climbed, then fell back more than "
        "half of what it had gained and stayed down to the end: the policy got worse with training, most "
        "often from updates too large for it (an actor's or critic's rate, a target network updated too "
        "fast, Q overestimation). Keep the best checkpoint and lower the rate."),
    "reward_plateau": Entry(
        "Return never rose",
        "A reinforcement-learning run's episode return (or success rate) stayed where it started over a long "
        "run (1,000 episodes, or 200 logged means, or more): its running median never rose above the start by "
        "more than a tenth "
        "of the start's size (or its own noise) and it ends there: the agent never learnt. Most often steps "
        "too small for the reward's scale, or a policy that collapsed early into one behaviour (its "
        "exploration or entropy gone); also a reward that gives no signal. Try another learning rate."),
    "kl_divergence": Entry(
        "Policy left its reference",
        "An RLHF run's KL to its reference model (the KL TRL, OpenRLHF and verl log beside the reward) "
        "grew by orders of magnitude to many nats, or rose steadily while the reward fell: the policy left "
        "the region where the reward model's scores mean anything (reward hacking) or its updates became "
        "unstable, and its outputs degenerate. Raise the KL coefficient (beta), lower the learning rate, "
        "clip the gradients, and keep a checkpoint from before the rise."),
    "validation_divergence": Entry(
        "Validation divergence",
        "The validation loss rises while the training loss still falls: the model is overfitting."),
    "truncated_log": Entry(
        "Truncated log",
        "The log ends inside a record, holds a corrupt record, or ends in a traceback: the run stopped "
        "abnormally or the file was cut; what was read before is still analysed."),
    "insufficient_data": Entry(
        "Insufficient data",
        "The run is too short (or logs no loss or gradient norm) to judge; nothing else is claimed."),
}

#: Titles of the cases one finding code covers, by the case (its evidence's metric, or a finer name
#: :func:`gradhealth.report.context.finding_title` gives it): the code's own title above is the
#: code's as a whole (a SARIF rule's), and a report titles each finding by its own case (newuser12
#: #6: a sigmoid under mse was titled "Loss takes probabilities the output does not give").
CASE_TITLES: dict[str, dict[str, str]] = {
    "output_loss_mismatch": {
        "silent_sample_fraction": "Loss takes probabilities the output does not give",
        "no_output_gradient": "No gradient reaches the output",
        "unreachable_loss_fraction": "Output activation applied twice: the loss applies its own again",
        "unreachable_target_fraction": "Output activation's range cannot reach the targets",
        "clipped_logits": "ReLU output clips the logits the loss needs below 0",
        "clipped_regression_output": "ReLU output cannot predict below 0 and passes no gradient there",
        "clipped_output": "Clip on the output passes no gradient beyond its bounds",
        "output_activation": "Output ends in an activation the loss may apply again",
        "softmax_units_under_binary_loss": "Softmax output under binary cross-entropy: its units cannot be independent",
    },
}

REMEDIES: dict[str, Entry] = {
    "he_init": Entry("He (Kaiming) initialisation",
                     "Var(W) = 2/fan_in keeps the signal's scale through ReLU-family layers (He et al. 2015)."),
    "xavier_init": Entry("Xavier (Glorot) initialisation",
                         "Var(W) = 2/(fan_in + fan_out) keeps the scale through tanh/sigmoid-like layers "
                         "(Glorot & Bengio 2010)."),
    "lecun_init": Entry("LeCun initialisation",
                        "Var(W) = 1/fan_in, the self-normalising init for SELU (Klambauer et al. 2017)."),
    "orthogonal_init": Entry("Orthogonal recurrent initialisation",
                             "An orthogonal recurrent matrix has all singular values 1, so it neither shrinks "
                             "nor grows the gradient through time by itself (Saxe et al. 2014)."),
    "relu_family_activation": Entry("ReLU-family activation",
                                    "ReLU, Leaky ReLU, ELU and SELU have derivative 1 (or a constant) on the "
                                    "positive side, so they do not shrink the gradient the way sigmoid/tanh do."),
    "residual_connections": Entry("Residual (skip) connections",
                                  "x + f(x) gives the gradient an identity path around each block, so depth "
                                  "no longer multiplies it away (He et al. 2016)."),
    "scaled_residual": Entry("Scaled residual branches",
                             "x + f(x)/sqrt(N) over N blocks keeps the variance of the residual sum bounded, "
                             "so activations and gradients do not grow with depth."),
    "batch_norm": Entry("Batch normalisation",
                        "Normalising each layer's pre-activations over the batch keeps their scale fixed, and "
                        "with it the gradient flow (Ioffe & Szegedy 2015)."),
    "layer_norm": Entry("Layer normalisation",
                        "Normalising each sample's pre-activations keeps their scale fixed, independent of the "
                        "batch (Ba et al. 2016)."),
    "pre_layer_norm": Entry("Pre-LN Transformer",
                            "LayerNorm inside the residual branch (norm_first) gives well-behaved gradients at "
                            "every depth and trains without warm-up (Xiong et al. 2020)."),
    "gated_recurrent_cell": Entry("Gated recurrent cell (LSTM/GRU)",
                                  "A gated cell carries memory additively; with the forget gate opened at the "
                                  "start (bias >= 1, or chrono init for long sequences) the gradient survives "
                                  "many steps."),
    "gradient_clipping": Entry("Gradient clipping",
                               "Rescale the gradient when its total norm exceeds max_norm; the standard guard "
                               "against exploding updates (Pascanu et al. 2013)."),
    "lower_learning_rate": Entry("Lower learning rate / warm-up",
                                 "Smaller (or gradually increased) steps keep large gradients from throwing "
                                 "the weights into a region they cannot return from."),
    "positive_learning_rate": Entry("A positive learning rate",
                                    "Gradient descent steps against the gradient: the rate must be above 0 "
                                    "(its magnitude is then the update size, which large_updates and "
                                    "small_updates judge)."),
    "raise_learning_rate": Entry("Raise the learning rate",
                                 "A loss that has not moved since the start can mean steps too small to "
                                 "make progress; a larger learning rate is the cheapest thing to try "
                                 "before suspecting the data or the labels."),
    "check_updates": Entry("Make the optimizer update the weights",
                           "A model whose losses repeat exactly is not being changed by its steps: check that "
                           "optimizer.step() runs on every batch (not skipped by a loss scaler, an accumulation "
                           "counter or an exception), that the trained parameters require gradients and are in "
                           "the optimizer's parameter groups, and that the learning-rate schedule has not "
                           "decayed to 0."),
    "check_loss_graph": Entry("Make the loss depend on the batch and the weights",
                              "A training loss that is the same number at every log, to all its printed digits, "
                              "though each log is another batch or another state of the weights, is not computed "
                              "from them: check that it comes from the model's output on the batch (no .item(), "
                              ".detach() or new tensor in between: loss.requires_grad and loss.grad_fn set), and that "
                              "backward leaves a nonzero gradient on the trained parameters (a loss clamped or "
                              "saturated at a bound, or a constant output, passes none)."),
    "logits_loss": Entry("Give the loss logits",
                         "A cross-entropy on logits (from_logits=True, or PyTorch's CrossEntropyLoss on the raw "
                         "outputs) folds the softmax into the loss: stable, and every sample gets a gradient."),
    "output_activation": Entry("Output activation the loss expects",
                               "A softmax over a single unit is the constant 1 and passes no gradient: one "
                               "probability is a sigmoid, several classes a softmax, a regression none (a ReLU "
                               "there clips every output below 0, and those get no gradient)."),
    "check_data": Entry("Find the batch or the operation that made the NaN",
                        "A NaN or Inf that arrives in one step, with the loss and the gradient norm flat before "
                        "it, was not grown by the updates: a batch holding NaN/Inf (a corrupt sample, a target "
                        "divided by a zero count, a missing value read as NaN) or an operation undefined on that "
                        "batch (log 0, 0/0, sqrt at 0). A lower learning rate cannot change it, and clipping a NaN "
                        "norm gives NaN gradients: check each batch's inputs and targets for finiteness, and "
                        "with the data finite let autograd's anomaly mode name the operation."),
    "domain_guard": Entry("An eps guard on an operation's input",
                          "A log, a square root, a division or an arc cosine is finite only on part of the "
                          "real line, and its derivative is infinite at the edge (sqrt at 0): a norm "
                          "without an eps, the log of a ReLU's zeros or the cosine of a zero vector makes "
                          "NaN from finite numbers. Clamping the input by an eps at that call, as "
                          "F.normalize and LayerNorm do, keeps it finite and changes no ordinary value."),
    "bounded_cell_activation": Entry("Bounded recurrent cell activation (tanh)",
                                     "A recurrent layer carries its state from step to step: an LSTM's cell "
                                     "state c = f * c + i * act(g) adds up its input over the sequence and "
                                     "h = o * act(c) passes it on. With tanh (the default of Keras' LSTM and "
                                     "GRU, and PyTorch's) each step's output stays within [-1, 1]; with an "
                                     "unbounded activation (relu, elu, linear) nothing stops the state building "
                                     "up over the steps, and each stacked layer multiplies its input's scale."),
    "stable_decay": Entry("A stable decay for an element-wise recurrence",
                          "In h_t = a * h_{t-1} + u_t (LRU, S4D, RWKV, a leaky integrator) the gradient changes by "
                          "|a| each step back: |a| far below 1 forgets within a few steps, above 1 explodes. "
                          "Draw |a| near 1 (0.9-0.999) and parameterise it so it stays below 1 (exp(-exp(nu))) "
                          "(Orvieto et al. 2023); a selective scan's decay exp(delta * A) (Mamba's) stays below 1 "
                          "with A = -exp(A_log) < 0 (Gu and Dao 2023)."),
    "normalise_inputs": Entry("Normalised inputs",
                              "He, Xavier and LeCun inits keep a unit-variance signal at unit variance; inputs "
                              "far from that scale (raw 0-255 pixels, unscaled physical units) start every layer "
                              "as far off: sigmoid and tanh units saturated, activations and gradients scaled "
                              "up. Inputs standardised with the training set's mean and standard deviation "
                              "(LeCun et al. 1998, Efficient BackProp) start the network where its init assumes."),
    "normalise_targets": Entry("Standardised regression targets",
                               "The regression loss's gradient is the residual, 2(f(x) - y) for MSE: targets "
                               "in the thousands (prices, counts, physical units) make it thousands of times "
                               "what a network initialised for unit-scale outputs and a usual learning rate "
                               "expect, so the first steps overshoot (or barely move, for targets far below "
                               "1). Fitting (y - mean) / std with the training set's mean and standard "
                               "deviation, and inverting at prediction, puts the residual at unit scale "
                               "(LeCun et al. 1998, Efficient BackProp; scikit-learn's "
                               "TransformedTargetRegressor)."),
    "zero_bias": Entry("Zero-initialised biases",
                       "A bias set far from 0 (a constant such as +6 or -3, or a wide normal) shifts every unit's "
                       "pre-activation by itself: sigmoid and tanh units start saturated, ReLU units dead, "
                       "whatever the weights' init. Biases at 0, as He and Xavier recipes start them, let "
                       "the weights' own signal decide."),
    "weight_decay": Entry("Weight decay",
                          "L2 regularisation keeps weights from growing without bound."),
    "balance_classes": Entry("Balanced classes",
                             "A loss weighted by inverse class frequency (or balanced resampling) makes the "
                             "majority class alone score no better than chance, so a model that predicts it for "
                             "every sample is pushed to learn the inputs (King and Zeng 2001; scikit-learn's "
                             "class_weight='balanced')."),
    "raise_kl_coefficient": Entry("Larger KL coefficient",
                                  "In RLHF the KL penalty (beta) is what keeps the policy near its reference "
                                  "model, where the reward model's scores hold; a larger one pulls a policy that "
                                  "drifted off back towards it."),
    "keep_exploring": Entry("Sustained exploration",
                            "An agent whose exploration (epsilon, the policy's entropy, action noise) has "
                            "decayed to nothing repeats what it already does and cannot find a better policy; "
                            "an entropy bonus (Mnih et al. 2016; PPO's c2 = 0.01, Schulman et al. 2017) or an "
                            "epsilon schedule that decays more slowly to a floor (DQN: 1 to 0.1 over the "
                            "first 2% of its frames, Mnih et al. 2015) keeps it trying other actions."),
    "early_stopping": Entry("Early stopping",
                            "Keep the weights from the step with the best validation loss and stop once it has "
                            "not improved for a while."),
}
