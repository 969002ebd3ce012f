-- lego.curriculum: the LEGO training data and loop. Chains grow from short to full length as the
-- model masters them (the curriculum), and every variable token used as an operand is asked for
-- its value too (operand supervision); experiments/README.md says why each is needed.
--
--   local curriculum = require "lego.curriculum"
--   local batch, st = curriculum.batcher(o)   batch(step) for train.run, and its state
--   curriculum.train(model, o)                train.run with this data -> result (+ .curriculum)
local T = require "milua.tensor"
local nn = require "milua.nn"
local train = require "milua.train"
local lego = require "milua.data.lego"
local sys = require "milua.sys"

local C = {}

local CLAUSE = 5   -- tokens per clause: "a = val 1 ,"
local ID = lego.id

-- Operand supervision: the operand x_(i-1) of clause i is labelled with its value too (depth i - 2),
-- weighted w. It asks every variable token for its value, which is what an association head
-- (a variable token looking up its identical twin) delivers.
local function add_operands(b, w, n_train)
  local tok, dep = b.tokens:totable(), b.depth:totable()
  local tgt, mask = b.targets:totable(), b.mask:totable()
  for r, ex in ipairs(b.examples) do
    for i = 2, ex.n_var do
      local p = ex.lhs_pos[i] + 3
      local d = dep[r][ex.lhs_pos[i - 1]]
      if tok[r][p] <= 26 and d < n_train then   -- a variable operand (not a literal)
        tgt[r][p] = ex.values[i - 1] + 1
        mask[r][p] = w
      end
    end
  end
  b.targets, b.mask = T.tensor(tgt, "int32"), T.tensor(mask, "float32")
end

-- Curriculum by segments: the chain of a batch's sequences is cut into independent chains of
-- len - 1 or len variables; the first clause of each piece gets its value as a literal, so the
-- values (the labels) stay the same and the depth restarts at 0. With several literals in a
-- sequence, the one-literal shortcut (xor every op with the only literal) no longer works: a
-- variable's value has to be fetched from its own chain.
local function segment(b, len, n_train)
  local tok, dep, mask = b.tokens:totable(), b.depth:totable(), b.mask:totable()
  for r, ex in ipairs(b.examples) do
    local start = 1
    while start <= ex.n_var do
      local l = len > 1 and T.random(len - 1, len) or 1
      for i = start, math.min(ex.n_var, start + l - 1) do
        local p = ex.lhs_pos[i]
        if i == start and i > 1 then
          tok[r][p + 2] = ID.val
          tok[r][p + 3] = ID[tostring(ex.values[i])]
        end
        dep[r][p] = i - start
        mask[r][p] = i - start < n_train and 1 or 0
      end
      start = start + l
    end
  end
  b.tokens, b.depth, b.mask = T.tensor(tok, "int32"), T.tensor(dep, "int32"), T.tensor(mask, "float32")
  b.segmented = true
end

--- curriculum.batcher{n_var, n_train_var, batch, tokens, ordered, curriculum = {start, extra, grow_at, max_stage}, operands, operands_final}
-- -> batch(step) for train.run, and a state table st. Without a curriculum every batch holds
-- `batch` single chains of n_var variables. With one, st.cur (the longest chain) starts at
-- curriculum.start and grows by one whenever the running training accuracy at every depth below
-- it reaches grow_at (0.95), or after max_stage steps (if set) at the same length; sequences then hold min(n_var, cur + extra) clauses cut into chains
-- of cur - 1 or cur variables (see segment), so they are also short at first. With `tokens`, the
-- batch size follows the sequence length (tokens // length rows). st.grown[n] is the step at
-- which chains of n were reached; st.observe(logits) is called by curriculum.train after every forward.
function C.batcher(o)
  local n_var, n_train = o.n_var, o.n_train_var or o.n_var
  local cur_o = o.curriculum
  local st = { cur = cur_o and math.min(n_var, cur_o.start or 2) or n_var, ema = {}, step = 0 }
  st.grown = { [st.cur] = 0 }
  function st.clauses() return cur_o and math.min(n_var, st.cur + (cur_o.extra or 1)) or n_var end
  local function batch(step)
    st.step = step
    local nc = st.clauses()
    local rows = o.tokens and math.max(1, o.tokens // (CLAUSE * nc + 2)) or o.batch
    local b = lego.batch(rows, nc, { n_train_var = n_train, ordered = o.ordered })
    if st.cur < nc then segment(b, st.cur, n_train) end
    local w = o.operands or 0
    if st.cur >= n_var and o.operands_final then w = o.operands_final end
    if w > 0 then add_operands(b, w, n_train) end
    st.last = b
    return b.tokens, b.targets, b.mask
  end
  -- per-depth accuracy of the last batch's supervised variables (eval_mask, depth < n_train)
  function st.observe(logits)
    local b = st.last
    local ok = logits:argmax(3):eq(b.targets) * b.eval_mask
    local top = math.min(st.cur, n_train)
    local all = true
    for d = 0, top - 1 do
      local m = b.depth:eq(d)
      local n = m:sum():item()
      if n > 0 then
        local a = (ok * m):sum():item() / n
        st.ema[d] = st.ema[d] and 0.9 * st.ema[d] + 0.1 * a or a
      end
      if (st.ema[d] or 0) < (cur_o and cur_o.grow_at or 0.95) then all = false end
    end
    -- grow on accuracy, or after max_stage steps at one length, so that a run stuck on one
    -- length still reaches the full chains early enough to learn them
    local stuck = cur_o and cur_o.max_stage and st.step - (st.grown[st.cur] or 0) >= cur_o.max_stage
    if cur_o and (all or stuck) and st.cur < n_var then
      st.cur = st.cur + 1
      st.grown[st.cur] = st.step
      st.ema = {}
      if st.on_grow then st.on_grow(st.cur, st.step) end
    end
  end
  return batch, st
end

--- curriculum.train(model, o): train.run on curriculum.batcher's data, cross-entropy on the masked labels.
-- o: n_var, n_train_var, steps, tokens | batch, lr, warmup, decay, min_lr, weight_decay, clip,
--    curriculum, operands, operands_final, ordered, eval_every, test (a test set: accuracy by depth
--    at every evaluation), show_train, checkpoint, quiet, log_every, label.
-- result.curriculum = {[chain length] = step reached}
function C.train(model, o)
  local batch, st = C.batcher(o)
  st.on_grow = function(n, step)
    if not o.quiet then
      if sys.isatty(1) then io.stdout:write("\r\27[K") end
      print(string.format("  curriculum: chains of up to %d variables from step %d", n, step))
    end
  end
  local function loss(m, tokens, targets, mask)
    local logits = m:forward(tokens)
    T.no_grad(function() st.observe(logits) end)
    return nn.cross_entropy(logits, targets, mask)
  end
  local eval = o.test and function(m)
    local acc = require("lego.recipe").acc_by_depth(m, o.test)
    local r = { cur = st.cur }
    for d, a in ipairs(acc) do r["d" .. (d - 1)] = a end
    if o.show_train then for d, a in pairs(st.ema) do r["tr" .. d] = a end end
    return r
  end or nil
  local res = train.run {
    model = model, batch = batch, loss = loss, steps = o.steps, lr = o.lr, warmup = o.warmup,
    decay = o.decay or "cosine", min_lr = o.min_lr, weight_decay = o.weight_decay, clip = o.clip,
    eval = eval, eval_every = o.eval_every, checkpoint = o.checkpoint, checkpoint_every = o.checkpoint_every,
    resume = o.resume, quiet = o.quiet, log_every = o.log_every, label = o.label,
  }
  res.curriculum = st.grown
  return res
end

return C
