"""Which scorers mean something on Chinese? Measured on the customer_service_zh dialogues (rewards/README.md, "Chinese").

    python scripts/measure_zh_scorers.py

- sentiment: does the scorer rank positive statements above negative ones, and the dataset's polite reference replies above rude / negative replies written for
  this check (AUC: the chance that a random polite reply scores above a random rude one; 0.5 = no signal)?
- consistency: does it rank a reply to its own conversation above the same reply under another intent's
  conversation (AUC over all train slots)?
- coherence: the same, against the reference reply (the English 13a tokens vs the zh tokenisation).
"""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rewards  # noqa: E402
from dialogue_env.data import load_dataset  # noqa: E402

RUDE = [
    "这是你自己的问题，别来烦我。", "你自己不会看说明书吗？", "爱用不用，我们管不了。", "说了多少遍了，你听不懂吗？",
    "退什么退，买了就别后悔。", "等着吧，催也没用。", "你这种客户我见多了。", "不知道，自己去查。",
    "这点小事也要打电话，真麻烦。", "我们没有责任，你找别人去。", "信号差是你家的问题，跟我们没关系。",
    "账单没错，你自己用多了还怪别人。", "别问了，反正解决不了。", "你爱投诉就去投诉，随便。",
    "我很忙，没空跟你解释。", "这种问题太蠢了。", "下次看清楚再买。", "快递丢了又不是我们丢的。",
    "你的要求太过分了，不可能。", "烦死了，挂了。",
]


POSITIVE = ["很高兴为您服务，祝您生活愉快！", "问题已经解决了，感谢您的耐心等待。", "您的退款已经到账，请放心。",
            "新手机很好用，速度非常快。", "谢谢您的支持，我们非常开心能帮到您。", "好消息！您的订单已经发货了。",
            "您的套餐升级成功，流量更多了。", "感谢您的理解和配合，祝您周末愉快。", "这款耳机音质很棒，很多客户都很满意。",
            "您的问题我们已经处理好了，非常顺利。", "欢迎您随时联系我们，我们很乐意帮忙。", "恭喜您获得了本月的优惠券！",
            "信号已经恢复正常，您可以放心使用。", "您的建议非常好，我们会认真采纳。", "很荣幸为您提供帮助。"]
NEGATIVE = ["很遗憾，您的订单丢失了。", "这个问题太糟糕了，我们也很失望。", "非常抱歉，退款失败了。",
            "您的手机已经坏了，没有办法了。", "服务很差，让人很生气。", "物流太慢了，真是令人烦恼。",
            "您的账户被冻结，情况很严重。", "很不幸，这个优惠已经过期了。", "信号一直很差，体验非常糟糕。",
            "我们无法处理，您只能等待。", "这款产品质量很差，很多人都不满意。", "您的投诉没有结果，非常遗憾。",
            "系统出错了，所有数据都丢失了。", "情况越来越坏，我们也很无奈。", "这次经历让人非常失望。"]


def snownlp_signed(contexts, texts):
    """snownlp's sentiment model (if installed), 2 * P(positive) - 1: measured here, not used by the reward."""
    from snownlp import sentiment

    return [2 * sentiment.classify(t) - 1 for t in texts]


def auc(pos, neg):
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def main():
    dialogues = load_dataset("customer_service_zh", "train")
    slots = [(list(d.turns[:end]), ref, d.intent) for d in dialogues for end, ref in d.reply_slots()]
    refs = [r for _, r, _ in slots]
    ctx = [[{"role": "user", "content": "你好"}]]
    print("| scorer | what | AUC |\n|---|---|---:|")
    scorers = [("VADER (English)", rewards.make("sentiment").__call__),
               ("HowNet lexicon + jieba (the zh default)", rewards.make("sentiment", language="zh").__call__)]
    if importlib.util.find_spec("snownlp") is not None:
        scorers.insert(1, ("snownlp (naive Bayes, product reviews)", snownlp_signed))
    for name, mod in scorers:
        pos, neg = mod(ctx * len(refs), refs), mod(ctx * len(RUDE), RUDE)
        print(f"| sentiment: {name} | {len(refs)} polite references vs {len(RUDE)} rude replies | {auc(pos, neg):.3f} |")
        pos, neg = mod(ctx * len(POSITIVE), POSITIVE), mod(ctx * len(NEGATIVE), NEGATIVE)
        print(f"| sentiment: {name} | {len(POSITIVE)} positive vs {len(NEGATIVE)} negative statements | "
              f"{auc(pos, neg):.3f} |")
    rng = random.Random(0)
    others = [rng.choice([s for s in slots if s[2] != intent])[0] for _, _, intent in slots]
    own_ctx = [c for c, _, _ in slots]
    for name, mod in [("MiniLM (all-MiniLM-L6-v2)", rewards.make("consistency", device="cpu")),
                      ("character bigrams", rewards.make("consistency", language="zh"))]:
        on = mod(own_ctx, refs)
        off = mod(others, refs)
        print(f"| consistency: {name} | reply vs own context, vs another intent's ({len(refs)} each) | "
              f"{auc(on, off):.3f} |")
    wrong = [rng.choice([s for s in slots if s[2] != intent])[1] for _, _, intent in slots]
    for name, mod in [("13a tokens (English)", rewards.make("coherence")),
                      ("zh tokens + character ROUGE-L", rewards.make("coherence", language="zh"))]:
        right = mod(own_ctx, [r[:len(r) // 2] + "。" for r in refs], references=refs)
        other = mod(own_ctx, [w[:len(w) // 2] + "。" for w in wrong], references=refs)
        print(f"| coherence: {name} | half of the reference vs half of another intent's reply | "
              f"{auc(right, other):.3f} |")


if __name__ == "__main__":
    main()
