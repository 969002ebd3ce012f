-- milua.analysis: the vocabulary the interpretability experiments are written in.
--
--   local analysis = require "milua.analysis"
--
-- Conventions: layers are 0-based (as in hook names: layer 0 is "blocks.0."); heads, neurons,
-- positions, token ids and components are 1-based. Result tensors indexed by layer have row
-- l + 1 for layer l. Nothing here changes the model except analysis.edit (which returns an undo
-- handle), and nothing draws from the global random generator unless asked (probe without a
-- seed, resample ablation with shuffle = true).
--
-- A page of an experiment:
--   local _, cache = model:run_with_cache(tokens)
--   local assoc, baseline = analysis.same_token_score(cache, tokens, { query_tokens = letters })
--   local p = analysis.pca(cache["blocks.1.hook_resid_post"]:reshape(n, -1), 10)
--   local r = analysis.corr(p:project(X), intermediate_values)            -- one r per component
--   local heads = analysis.patch(model, clean, corrupt, logit_diff, { what = "z_all", normalize = true })
--   local est = analysis.attribution_patch(model, clean, corrupt, logit_diff, { what = "z_all", normalize = true })
--   local logits = model:run_with_hooks(tokens, analysis.ablate_head(0, 2, { mode = "mean", reference = cache }))
--   local probe = analysis.probe(cache["blocks.2.hook_resid_post"]:select(2, pos), labels, { seed = 1 })
--
-- Statistics (analysis/stats.lua)
--   pca(X [n,d], k) -> p {components [k,d], explained_variance [k], explained_ratio [k], mean [d],
--                         singular_values [k]}; p:project(X) -> [n,k]; p:reconstruct(Z) -> [n,d]
--   corr(a, b, {method = "pearson"|"spearman"}) -> number; corr(X [n,d], y [n]) -> [d]
--   rank(x) -> average ranks (ties share their mean rank), per column for a matrix
--   ridge(X, y, {l2}) -> {weights, bias, predict}          closed form via LAPACK least squares
--   probe(X, y, {kind = "classify"|"regress", test_fraction = 0.2, seed, l2, steps, lr})
--     -> {accuracy | r2 (held out), train_accuracy | train_r2, chance, weights, bias, predict}
--   eye(n) -> identity [n,n]
-- Fits (analysis/fit.lua), double precision
--   r2(pred, target) -> coefficient of determination (scikit-learn's r2_score)
--   polyfit(x, y, deg) -> coefficients, highest power first (NumPy's order); polyval(coef, x)
-- Linear algebra (native, LAPACK, double precision inside): T.eigh, T.svd, T.lstsq, T.solve
--
-- Interventions (analysis/interventions.lua); each returns a hooks table {[name] = fn} for
-- model:run_with_hooks (or analysis.add_hooks / analysis.merge_hooks)
--   ablate_head(layer, head(s), {mode = "zero"|"mean"|"resample", reference, positions})
--   ablate_neurons(layer, neuron(s), opts)            at blocks.L.mlp.hook_post
--   ablate_position(hook_name | layer, position(s), opts)   a layer means blocks.L.hook_resid_pre
--   ablate(hook_name, {[dim] = indices}, opts)         any slice of any activation
--   ablate_direction(hook_name | layer, direction, {mode, reference})   project a direction out
--   scale_direction(hook_name | layer, direction, factor)   x + (factor - 1)(x.u)u
--   add_direction(hook_name | layer, vector, coeff)     x + coeff * vector
--   knockout(layer, head(s), {queries, keys})          zero pattern entries, no renormalisation
--   merge_hooks(h1, h2, ...), add_hooks(model, hooks) -> handle:remove()
--   edit(model, param_name, {zero | scale | project_out, direction | component, along, head | slice})
--     -> handle:undo() restores the exact original bytes
--
-- Patching (analysis/patching.lua): clean activations patched into the corrupted run
--   patch(model, clean, corrupt, metric, {what, layers, positions, heads, normalize}) -> results, info
--   attribution_patch(model, clean, corrupt, metric, {what, ...}) -> results, info  (gradient x delta)
--
-- Readouts (analysis/readout.lua)
--   logit_lens(model, cache, {pos, ln = "recompute"|"frozen"}) -> [n_layers+1, batch, pos, vocab], labels
--   dla(model, cache, target, pos) -> {labels, values [n_components, batch], bias, total, mean}
--
-- Attention heads (analysis/heads.lua); all -> [n_layers, n_heads]
--   head_score(cache, tokens, predicate(b, q, k, toks), {query = fn(b, q, toks)})
--   same_token_score(cache, tokens, {query_tokens | query, causal}) -> scores, uniform baseline
--   prev_token_score(cache), first_token_score(cache), attention_mass(cache, key_mask, query_mask)
--   best_head(scores) -> {layer (0-based), head, score}; heads_over(scores, threshold) -> list, best first
local analysis = {}

for _, part in ipairs({ "stats", "fit", "interventions", "patching", "readout", "heads" }) do
  for k, v in pairs(require("milua.analysis." .. part)) do
    if analysis[k] ~= nil then error("milua.analysis: '" .. k .. "' is defined twice") end
    analysis[k] = v
  end
end

return analysis
