"""Answers state the figure bound to the noun asked about, per place and year, or refuse."""

import pytest

from rag.retrieve import QueryError


def verified(answerer, ans):
    return all(answerer.texts[c.doc_id][c.start:c.end] == c.quote for c in ans.citations)


def test_a_figure_printed_with_spaces_is_answered_as_the_figure(answerer):
    ans = answerer.ask("洛阳市督导推动城市区治理各类“飞线”多少处？")
    assert ans.found and "3047处" in ans.answer
    assert verified(answerer, ans)


@pytest.mark.parametrize("place, figure", [("盖州市", "93人次"), ("大石桥市", "74人次"), ("洛龙区", "99人次")])
def test_the_same_measure_is_answered_per_place(answerer, place, figure):
    ans = answerer.ask(f"2025年{place}人大常委会依法任免了多少人次？")
    assert ans.found and figure in ans.answer, ans.answer
    assert figure.rstrip("人次") in ans.citations[0].quote


def test_two_places_in_one_question_get_both_figures(answerer):
    ans = answerer.ask("盖州市和大石桥市2025年分别召开主任会议多少次？")
    assert ans.found and "39次" in ans.answer and "14次" in ans.answer


def test_a_year_the_corpus_never_prints_is_refused(answerer):
    ans = answerer.ask("2019年新安县人大常委会召开党组会议多少次？")
    assert not ans.found and "2019" in ans.answer
    assert ans.citations and verified(answerer, ans)


def test_a_year_printed_only_in_the_text_is_left_to_the_ranker(answerer):
    """2017 is no publication's year, but the journal quotes a speech of 2017年12月18日: the
    question is not refused for its year (as it was, wrongly, before)."""
    ans = answerer.ask("2017年12月18日在中央经济工作会议上的讲话是谁的？")
    assert "语料只涵盖" not in ans.answer


def test_a_place_the_corpus_never_mentions_is_refused(answerer):
    ans = answerer.ask("开封市人大常委会2024年召开了几次常委会会议？")
    assert not ans.found and "开封市" in ans.answer


def test_an_english_question_is_answered_from_chinese_text(answerer):
    ans = answerer.ask("How many elderly meal canteens has Bayuquan district built?")
    assert ans.found and "4处" in ans.answer
    assert "助老食堂" in ans.citations[0].quote


def test_the_answer_is_text_of_the_first_citation(answerer):
    import re
    import unicodedata

    def squash(s):
        return re.sub(r"\s", "", unicodedata.normalize("NFKC", s))

    for q in ["鲅鱼圈区连续五年对多少所学校食堂开展跟踪监督？", "洛龙区电梯加装采用什么模式？"]:
        ans = answerer.ask(q)
        assert ans.found and squash(ans.answer) in squash(ans.citations[0].quote), q


@pytest.mark.parametrize("question", ["", "   ", "问" * 1001])
def test_bad_questions_are_refused_with_a_reason(answerer, question):
    with pytest.raises(QueryError):
        answerer.ask(question)


def test_a_citation_that_does_not_verify_is_never_returned(answerer, monkeypatch):
    text = answerer.texts["luolong-2025-xunli"]
    monkeypatch.setitem(answerer.texts, "luolong-2025-xunli", "x" + text)  # the file changed under us
    ans = answerer.ask("2025年洛龙区人大常委会召开常委会会议多少次？")
    assert ans.citations  # other documents still cite
    assert all(c.doc_id != "luolong-2025-xunli" for c in ans.citations)


def test_who_question_names_the_holder_of_the_title_asked(answerer):
    ans = answerer.ask("谁是汝阳县人大常委会主任？")
    assert ans.found and "李杰" in ans.answer and "雷雪芹" not in ans.answer
    deputy = answerer.ask("哪位市人大常委会副主任带队到汝阳县中医院调研？")
    assert deputy.found and "雷雪芹" in deputy.answer
    assert verified(answerer, ans) and verified(answerer, deputy)


def test_author_question_is_answered_from_the_byline(answerer):
    ans = answerer.ask("《监督“小切口” 守护“大民生”》的作者是谁?")
    assert ans.found and "张艳艳" in ans.answer


def test_a_session_number_is_not_taken_for_a_count(answerer):
    ans = answerer.ask("How many standing committee sessions were convened by Luolong district in 2025?")
    assert ans.found and "8次" in ans.answer and "五次" not in ans.answer


def test_a_figure_binds_to_the_verb_and_noun_around_it():
    from rag.candidates import _binding
    from rag.question import Question

    q = Question("收集的问题中已办结多少条？", "zh", "number", "条", (), (), (), {"问题": 1.0, "办结": 2.0},
                 ("办结", "问题"), ("办结",), (), (), asked="办结", asked_verb="办结")
    s = "收集问题4297条,办结3375条"
    collected, done = _binding(s, (4, 9), q), _binding(s, (12, 17), q)
    assert done["own_asked"] == 1.0 and collected["own_asked"] == 0.0
    assert collected["asked_elsewhere"] == 1.0 and done["asked_elsewhere"] == 0.0
    q = Question("多少个村党群服务中心？", "zh", "number", "个", (), (), (), {"党群服务中心": 1.0}, ("党群服务中心",),
                 (), (), ())
    s = "在11个镇代表联络站建立党支部,在311个村党群服务中心建立接待岗"
    assert _binding(s, (s.index("311"), s.index("311") + 4), q)["bind_noun"] > _binding(s, (1, 4), q)["bind_noun"]


def test_an_english_question_is_not_refused_for_words_the_glossary_lacks(answerer):
    # "retrofitted" and "compounds" are not in the glossary; the dense side reads them
    ans = answerer.ask("How many lifts were retrofitted in old residential compounds in Luoyang?")
    assert ans.found and "电梯" in ans.answer and "部" in ans.answer, ans.answer


def test_an_english_questions_own_verb_picks_which_figure_of_the_sentence(answerer):
    # 共梳理上报50余条,其中4条被省级立法机关采纳: "were adopted" asks the second, "report" the first
    ans = answerer.ask("How many of the comments Xishi District sent up on six draft laws were adopted?")
    assert ans.found and ans.answer.startswith("其中4条"), ans.answer
    ans = answerer.ask("How many opinions did Xishi District sort out and report on the six draft laws?")
    assert ans.found and "50余条" in ans.answer, ans.answer


def test_a_question_sharing_only_place_and_year_with_the_corpus_is_refused(answerer):
    ans = answerer.ask("中原区2020年降雨量是多少毫米？")
    assert not ans.found and "中原区" not in ans.answer


def test_a_list_answer_runs_over_the_items_under_the_heading_asked():
    from rag.answer import following_items

    text = "二、存在问题(一)理念没有形成。观念落后。(二)体系不够完善。供给单一。(三)协同不到位。"
    first = text.index("。") + 1
    assert text[:following_items(text, first)] == text


def test_list_question_answers_with_the_enumerated_items(answerer):
    ans = answerer.ask("汝阳县的养老服务工作存在哪些方面的问题？")
    assert ans.found and "全社会养老服务发展理念没有形成" in ans.answer


@pytest.mark.parametrize("question, place", [("嵩县2024年加装了多少部电梯？", None),
                                             ("青石县人大常委会2025年召开了几次常委会会议？", "青石县"),
                                             ("长乐镇建了几个人大代表联络站？", "长乐镇")])
def test_a_place_without_the_figure_is_refused_not_given_another_places(answerer, question, place):
    ans = answerer.ask(question)
    assert not ans.found, ans.answer
    assert place is None or place in ans.answer


def test_a_figure_the_question_states_is_not_its_answer(answerer):
    ans = answerer.ask("全市登记建档的238个古树群中，一级古树群有多少个？")
    assert not ans.found or "238" not in ans.answer, ans.answer


def test_a_rate_question_gets_a_rate_not_a_count(answerer):
    ans = answerer.ask("2025年大石桥市集团化办学参与率是多少？")
    assert ans.found and "100%" in ans.answer, ans.answer


def test_a_citation_pinpoints_the_sentence_inside_its_passage(answerer):
    ans = answerer.ask("洛阳市登记建档的古树名木共计多少株？")
    assert ans.found and ans.citations
    for c in ans.citations:
        text = answerer.texts[c.doc_id]
        assert c.passage_start <= c.start < c.end <= c.passage_end <= len(text)
        assert text[c.start:c.end] == c.quote
    first = ans.citations[0]
    assert "88965" in first.quote.replace(" ", "")
    assert first.end - first.start < first.passage_end - first.passage_start  # a sentence, not the chunk
    assert "。" not in first.quote.rstrip("。").replace("......", "")  # one sentence


def test_a_masthead_field_is_answered_by_its_value(answerer):
    ans = answerer.ask("《洛阳人大》编辑部的邮政编码是多少？")
    assert ans.found and "471023" in ans.answer, ans.answer


def test_a_rate_question_tells_the_rate_it_names_from_the_others_beside_it(answerer):
    """答复率100%、办结率98%、满意率100%: asked the 满意率, the figure after 满意率 is named, the
    one after 办结率 is another rate."""
    q = answerer.analyse("老边区“三个微平台”的代表意见建议满意率是多少？")
    cands = answerer.candidates(q, answerer.retrieve(q, 5, None))
    after = {c.norm.text[c.target[0] - 3:c.target[0]]: c.features for c in cands
             if c.kind == "figure" and "办结率98%" in c.sentence}
    assert after["满意率"].get("rate_named") == 1.0 and not after["满意率"].get("rate_other")
    assert after["办结率"].get("rate_other") == 1.0 and not after["办结率"].get("rate_named")


def test_a_part_of_a_count_the_question_gives_is_answered_beside_it(answerer):
    ans = answerer.ask("洛阳市人大常委会2024年上半年在市级以上主流媒体发稿683篇中，在省级以上媒体发稿多少篇？")
    assert ans.found and "308篇" in ans.answer
    ans = answerer.ask("站前区上传的1518件民情民意中，已解决多少件？")
    assert ans.found and "1411件" in ans.answer


def test_a_part_the_text_does_not_give_of_a_count_it_gives_is_refused(answerer):
    """552名群众联络员 is printed; how many of them are women is not: the 45名 of another sentence
    is not the answer."""
    ans = answerer.ask("新安县聘任的552名群众联络员中，女性有多少名？")
    assert not ans.found


@pytest.mark.parametrize("question", [
    "2024年下半年，洛阳市各级人大代表参加闭会期间活动多少次？",  # 上半年 is printed in the sentence
    "西市区2025年1月至7月收集了多少件意见建议及问题？",  # 自8月以来 is printed
])
def test_a_period_other_than_the_printed_one_is_refused(answerer, question):
    assert not answerer.ask(question).found


def test_a_figure_beside_the_given_count_is_not_a_part_of_it(answerer):
    """查摆问题289个、收集意见建议352条: the 352 is not the part of the 289 the question names."""
    assert not answerer.ask("洛阳养老服务联动监督查摆的289个问题里，属于消防安全方面的有多少个？").found


def test_a_rate_beside_the_count_the_question_gives_is_answered(answerer):
    ans = answerer.ask("汝阳县60岁以上老人有8.9万人，老龄化率是多少？")
    assert ans.found and "16.8%" in ans.answer


def test_a_total_is_not_the_answer_to_a_figure_per_person(answerer):
    """人均 asked, only the county's total income (综合收益突破18亿元) printed."""
    assert not answerer.ask("新安县樱桃种植的综合收益，人均每年是多少元？").found


def candidates_of(answerer, question):
    q = answerer.analyse(question)
    return q, answerer.candidates(q, answerer.retrieve(q, 5, None))


@pytest.mark.parametrize("question, quoted", [
    # 备案审查规范性文件9件,对2022年以来…: 2022年以来 runs to the summary's 2024, not only 2022
    ("2024年上半年洛阳市人大常委会备案审查了多少件规范性文件？", "备案审查规范性文件9件"),
    # 今年以来 in a half-year summary is that half-year
    ("2024年上半年全市五级人大代表累计进站多少人次？", "1.45万人次"),
    # (2017年12月18日在中央经济工作会议上的讲话) closes an excerpt printed in a 2024 issue
    ("习近平2017年在中央经济工作会议上说必须加快形成哪些体系？", "指标体系、政策体系"),
    # the sentence quoting a resident does not repeat 涧西区滨河新村小区; its passage names it
    ("涧西区滨河新村小区的张阿姨在小区里住了多少年？", "住了20多年"),
], ids=["counted-since-a-year", "so-far-this-year", "speech-attribution-year", "place-in-the-passage"])
def test_a_sentence_is_in_the_scope_its_text_gives_it(answerer, question, quoted):
    from rag.candidates import eligible

    q, cands = candidates_of(answerer, question)
    assert any(quoted in c.sentence for c in cands if eligible(q, c))


def test_the_plans_of_a_summary_titled_with_two_periods_are_of_the_second(answerer):
    """2024年上半年工作总结暨下半年工作打算: the part after 下半年,市人大常委会将… is the plan."""
    from rag.candidates import part_period

    text = answerer.texts["luoyang-renda-2024-03"]
    title = "洛阳市人大常委会2024年上半年工作总结暨下半年工作打算"
    assert part_period(text, text.index("出台加强噪声扰民监管"), title) == "下半年"
    assert part_period(text, text.index("备案审查规范性文件9件"), title) == "上半年"
    _, cands = candidates_of(answerer, "洛阳市人大常委会2024年下半年打算开展哪些立法调研？")
    plan = [c for c in cands if "噪声扰民监管" in c.sentence]
    assert plan and all(c.features.get("period_hit") and not c.features.get("period_miss") for c in plan)


def test_items_listed_as_short_clauses_are_a_list():
    from rag.candidates import _parallel_clauses

    assert _parallel_clauses("赌场等不良场所不要去,私人会所不要去,高档娱乐场所不要去。")
    assert not _parallel_clauses("区人大常委会听取审议了报告,提出了意见。")


def test_two_items_and_so_on_are_a_list(answerer):
    """消防、食品等安全责任制 lists two and cuts the rest short: an answer to which ones."""
    from rag.candidates import ITEMS_AND_SO_ON, eligible

    assert ITEMS_AND_SO_ON.search("建立健全养老服务机构消防、食品等安全责任制")
    assert not ITEMS_AND_SO_ON.search("推动经济、社会发展")  # two things, and nothing cut short
    assert not ITEMS_AND_SO_ON.search("消防、食品安全责任制,守护好老年人的生命健康安全等")  # 等 of another clause
    q, cands = candidates_of(answerer, "养老服务联动监督时，检查组督促养老服务机构建立健全了哪些安全责任制？")
    assert any("消防、食品等安全责任制" in c.sentence for c in cands if eligible(q, c))


@pytest.mark.parametrize("question, answerable", [
    ("What did Xi Jinping say at the Central Rural Work Conference in December 2022 about industry and agriculture?", False),
    ("习近平2022年在中央农村工作会议上讲了工农城乡循环的什么作用？", False),
    ("习近平关于畅通工农城乡循环的那段话是在什么场合讲的？", True),
    ("习近平哪一天在中央农村工作会议上讲了畅通工农城乡循环？", True),
])
def test_a_line_saying_where_an_excerpt_was_said_answers_only_when_or_where_it_was_said(answerer, question, answerable):
    """(2022年12月23日在中央农村工作会议上的讲话) closes an excerpt: it tells the occasion, not what
    was said."""
    from rag.candidates import SOURCE_LINE, eligible

    q, cands = candidates_of(answerer, question)
    lines = [c for c in cands if SOURCE_LINE.fullmatch(c.sentence.strip()) and "中央农村工作会议" in c.sentence]
    assert lines, "the excerpt's source line is among the candidates"
    assert any(eligible(q, c) for c in lines) == answerable
