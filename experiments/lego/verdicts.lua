-- lego.verdicts: the paper's claims that lego_shortcut and lego_mimic answer, decided only from
-- models that learned the task. A model is "trained" when every supervised depth reached
-- recipe.default.trained_at (0.97) on held-out chains in its training order; a claim that needs a
-- model that did not train gets no `holds` at all, only a text saying which model failed.
--
--   local verdicts = require "lego.verdicts"
--   verdicts.model(acc_by_depth, supervised, extra)   -> {acc_by_depth, supervised_min, trained, ...extra}
--   verdicts.judge(models, needs, decide)             -> {holds = bool | nil, text}
--   verdicts.shortcut(models, sup)                    ordered-data model drops on shuffled clauses
--   verdicts.heads_by_position(models, heads)         its strongest head is position-based, the shuffled one's identity-based
--   verdicts.tying(models, sup, n_var)                tied layers generalise further on the unsupervised depths
--   verdicts.init(models, name, base, sup, n_var, what)   escapes the plateau sooner and generalises further
-- models: {name = verdicts.model(...)} (the shortcut ones also carry acc_on = {ordered, shuffled},
-- the init ones escape_step and steps).
local recipe = require "lego.recipe"

local V = {}

local MARGIN = 0.02   -- a difference smaller than this in mean accuracy is "did not differ"
V.ESCAPE_AT = 0.9     -- the plateau is left when every supervised depth reaches this on held-out chains

local function mean(list, from, to)
  if not list or to < from then return 0 / 0 end
  return recipe.mean(list, from, to)
end

--- verdicts.model(acc, supervised, extra) -> {acc_by_depth, supervised_min, trained, ...extra}
function V.model(acc, supervised, extra)
  local trained, low = recipe.trained(acc, supervised)
  local m = { acc_by_depth = acc, supervised_min = low, trained = trained }
  for k, v in pairs(extra or {}) do m[k] = v end
  return m
end

--- verdicts.judge(models, needs, decide) -> {holds, text}
-- decide() -> holds, text runs only when every model named in needs exists and trained;
-- otherwise holds stays absent and the text names the models that did not train.
function V.judge(models, needs, decide)
  local missing = {}
  for _, name in ipairs(needs) do
    local m = models[name]
    if not m then
      missing[#missing + 1] = name .. " (not trained here)"
    elseif m.trained ~= true then
      missing[#missing + 1] = string.format("%s (lowest supervised depth %.3f < %.2f)", name,
        m.supervised_min or 0 / 0, recipe.default.trained_at)
    end
  end
  if #missing > 0 then
    return { text = "a model it needs did not learn the task: " .. table.concat(missing, ", ") }
  end
  local holds, text = decide()
  return { holds = holds and true or false, text = text }
end

--- verdicts.shortcut(models, sup): models.ordered and models.shuffled with acc_on {ordered, shuffled};
-- the shortcut = the ordered-data model loses >= 0.1 (mean over supervised depths) on shuffled
-- clauses, and at least 0.05 more than the shuffled-data model loses on ordered ones
function V.shortcut(models, sup)
  return V.judge(models, { "ordered", "shuffled" }, function()
    local o, s = models.ordered.acc_on, models.shuffled.acc_on
    local drop_o = mean(o.ordered, 0, sup - 1) - mean(o.shuffled, 0, sup - 1)
    local drop_s = mean(s.shuffled, 0, sup - 1) - mean(s.ordered, 0, sup - 1)
    local holds = drop_o >= 0.1 and drop_o > drop_s + 0.05
    return holds, string.format("%s: the ordered-data model loses %.3f on shuffled clauses (mean over depths 0-%d: " ..
      "%.3f -> %.3f); the shuffled-data model loses %.3f on ordered ones", holds and "shortcut found" or "no shortcut",
      drop_o, sup - 1, mean(o.ordered, 0, sup - 1), mean(o.shuffled, 0, sup - 1), drop_s)
  end)
end

--- verdicts.heads_by_position(models, heads): heads[name] = {best_assoc = {layer, head, score},
-- best_offset = {...}} on shuffled input; holds when the ordered-data model's strongest head is
-- position-based (offset mass above association) and the shuffled-data model's is identity-based
function V.heads_by_position(models, heads)
  return V.judge(models, { "ordered", "shuffled" }, function()
    local function kind(h) return h.best_offset.score > h.best_assoc.score and "position-based" or "identity-based" end
    local ho, hs = heads.ordered, heads.shuffled
    local holds = kind(ho) == "position-based" and kind(hs) == "identity-based"
    return holds, string.format("the ordered-data model's strongest head is %s (best association L%dH%d %.2f, " ..
      "best chain-order offset L%dH%d %.2f); the shuffled-data model's is %s (association L%dH%d %.2f, offset L%dH%d %.2f)",
      kind(ho), ho.best_assoc.layer, ho.best_assoc.head, ho.best_assoc.score, ho.best_offset.layer, ho.best_offset.head,
      ho.best_offset.score, kind(hs), hs.best_assoc.layer, hs.best_assoc.head, hs.best_assoc.score, hs.best_offset.layer,
      hs.best_offset.head, hs.best_offset.score)
  end)
end

local function compare_text(x, y)
  return x > y + MARGIN and "better" or (x < y - MARGIN and "worse" or "no differently (within 0.02)")
end

--- verdicts.tying(models, sup, n_var): models.tied against models.shuffled (untied) on the depths
-- never supervised (sup .. n_var - 1), shuffled clauses
function V.tying(models, sup, n_var)
  return V.judge(models, { "tied", "shuffled" }, function()
    local t, u = mean(models.tied.acc_by_depth, sup, n_var - 1), mean(models.shuffled.acc_by_depth, sup, n_var - 1)
    return t > u + MARGIN, string.format("weight-tied (%d steps) generalised %s than untied (%d steps) on the " ..
      "unsupervised depths %d-%d: %.3f vs %.3f", models.tied.steps or 0, compare_text(t, u), models.shuffled.steps or 0,
      sup, n_var - 1, t, u)
  end)
end

--- verdicts.init(models, name, base, sup, n_var, what) -> {sooner = verdict, further = verdict}
-- sooner: models[name].escape_step (the first step of the training curve with every supervised
-- depth >= 0.9) is earlier than models[base].escape_step; further: its mean accuracy on the
-- unsupervised depths is higher by more than 0.02
function V.init(models, name, base, sup, n_var, what)
  local needs = { name, base }
  local sooner = V.judge(models, needs, function()
    local a, b = models[name].escape_step, models[base].escape_step
    if not a or not b then
      return false, string.format("%s: no escape step on the training curve (%s %s, %s %s)", what, name,
        tostring(a), base, tostring(b))
    end
    return a < b, string.format("%s reached every supervised depth >= 0.9 at task step %d, %s at step %d (%s)", what, a,
      base, b, a < b and "sooner" or "not sooner")
  end)
  local further = V.judge(models, needs, function()
    local x = mean(models[name].acc_by_depth, sup, n_var - 1)
    local y = mean(models[base].acc_by_depth, sup, n_var - 1)
    return x > y + MARGIN, string.format("%s (%d steps) generalised %s than %s (%d steps) on the unsupervised depths " ..
      "%d-%d: %.3f vs %.3f", what, models[name].steps or 0, compare_text(x, y), base, models[base].steps or 0, sup,
      n_var - 1, x, y)
  end)
  return { sooner = sooner, further = further }
end

--- verdicts.say(E, name, v): prints a verdict where it is computed
function V.say(E, name, v)
  E:say("verdict %s: %s -- %s", name, v.holds == nil and "not judged" or (v.holds and "held" or "did not hold"), v.text)
end

return V
