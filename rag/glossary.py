"""A bilingual glossary of the domain, used to turn an English question into Chinese search terms.

No retriever here handles English questions over Chinese text well (DESIGN.md), so an English
question is expanded with the Chinese terms of the words it contains.
"""

from __future__ import annotations

import re

# English phrase → Chinese terms. Longer phrases are matched first.
GLOSSARY: dict[str, str] = {
    # bodies and meetings
    "standing committee": "常委会 人大常委会",
    "people's congress": "人民代表大会 人大",
    "peoples congress": "人民代表大会 人大",
    "congress": "人大",
    "director's meeting": "主任会议", "directors meeting": "主任会议", "chairman's meeting": "主任会议",
    "council of chairpersons": "主任会议",
    "party group": "党组", "party leadership group": "党组会议",
    "session": "会议", "sessions": "会议", "meeting": "会议", "meetings": "会议",
    "deputy": "代表", "deputies": "代表", "representatives": "代表", "representative": "代表",
    "liaison station": "联络站", "liaison stations": "联络站", "contact station": "联络站",
    "mobile workstation": "流动工作站", "mobile work station": "流动工作站", "workstation": "工作站",
    "home of deputies": "代表之家", "deputies' homes": "代表之家",
    "legislative contact point": "基层立法联系点", "legislative information": "立法信息",
    "information collection point": "信息采集点", "informants": "信息员",
    # powers and work
    "law enforcement inspection": "执法检查", "enforcement inspection": "执法检查",
    "inspection": "检查 视察", "inspections": "检查 视察",
    "special inquiry": "专题询问", "inquiry": "询问", "inquiries": "询问",
    "appointed": "任免", "appointments": "任免", "appointment": "任免", "removed": "任免",
    "person-times": "人次", "times": "次",
    "work report": "工作报告", "work reports": "工作报告", "special work report": "专项工作报告",
    "reports": "报告", "report": "报告", "reviewed": "审议", "deliberated": "审议",
    "suggestions": "建议 意见建议", "suggestion": "建议", "proposals": "议案 建议", "opinions": "意见",
    "supervision": "监督", "oversight": "监督", "research": "调研", "survey": "调研",
    "satisfaction": "满意度 满意率", "evaluation": "测评 考评", "assessment": "考评",
    "legislation": "立法", "regulation": "条例", "regulations": "条例", "law": "法",
    "voting": "票决", "vote": "票决", "training": "培训", "publicity": "宣传", "lecture": "宣讲",
    "received": "接待", "visitors": "群众", "residents": "群众 居民", "people": "群众",
    "complaints": "诉求", "problems": "问题", "issues": "问题", "solved": "解决", "resolved": "解决 办结",
    "qr code": "二维码", "digital": "数字人大", "rectification": "整改",
    # livelihood topics
    "elevator": "电梯 加装电梯", "elevators": "电梯 加装电梯", "lift": "电梯", "lifts": "电梯",
    "old residential": "老旧小区", "old neighborhoods": "老旧小区", "old communities": "老旧小区",
    "flying wires": "飞线", "overhead wires": "飞线", "tangled wires": "飞线", "wires": "飞线",
    "ancient trees": "古树名木", "old trees": "古树名木", "famous trees": "古树名木", "trees": "古树",
    "peony": "牡丹", "peonies": "牡丹", "varieties": "品种",
    "canteen": "食堂", "canteens": "食堂", "school": "学校", "schools": "学校",
    "elderly": "老年人 老人 养老", "aged": "老年人", "older people": "老年人 老人", "senior": "老年人",
    "elderly care": "养老服务", "old-age care": "养老服务", "pension": "养老",
    "meal": "助餐", "meals": "助餐", "dining": "助餐 食堂",
    "disabled": "失能", "semi-disabled": "半失能",
    "health": "健康", "preventive": "治未病", "prevention": "治未病 预防",
    "court": "法庭 庭审", "trials": "庭审", "trial": "庭审", "hearing": "庭审",
    "traffic police": "交警", "police": "警", "housing": "安置房", "resettlement": "安置房",
    "rural": "乡村 农村", "village": "村", "villages": "乡村", "revitalization": "振兴",
    "roads": "公路 道路", "road": "公路 道路", "kilometers": "公里", "km": "公里",
    "safety": "安全", "food safety": "食品安全", "production safety": "安全生产",
    "civil code": "民法典", "discipline": "纪律", "budget": "预算", "debt": "债务",
    "articles": "稿件 文章", "media": "媒体", "print": "印刷", "copies": "印刷数量",
    "party group meeting": "党组会议", "party group meetings": "党组会议",
    "standing committee meeting": "常委会会议", "standing committee meetings": "常委会会议",
    "standing committee session": "常委会会议", "standing committee sessions": "常委会会议",
    "plenary session": "全体会议", "plenary meeting": "全体会议", "full session": "全体会议",
    "standing committee members": "常委会组成人员", "committee members": "组成人员",
    "motions": "议案", "motion": "议案", "bills": "议案", "deputies' suggestions": "代表建议",
    "whole-process people's democracy": "全过程人民民主", "whole-process democracy": "全过程人民民主",
    "grassroots": "基层", "local regulations": "地方性法规", "local laws": "地方性法规",
    "filing review": "备案审查", "record review": "备案审查", "normative documents": "规范性文件",
    "letters and visits": "信访", "petitions": "信访", "hotline": "热线", "law enforcement": "执法",
    "budget review": "预算审查", "final accounts": "决算", "audit": "审计", "state-owned assets": "国有资产",
    "major matters": "重大事项", "resolutions": "决议 决定", "decisions": "决定 决议", "decision": "决定",
    "state functionaries": "国家机关工作人员", "state personnel": "国家机关工作人员",
    # common verbs and nouns of the reports
    "ancient": "古树", "register": "登记", "appoint": "任命 任免", "remove": "免职 任免",
    "visit": "走访 进站", "station": "站 工作站", "point": "点",
    "mechanism": "机制 工作机制", "model": "模式", "system": "制度 机制", "measures": "措施 举措",
    "endangered": "濒危 濒危古树", "protection": "保护", "protect": "保护",
    "installed": "加装", "install": "加装", "installation": "加装", "coordinate": "协调推进 协调",
    "coordinated": "协调推进 协调", "registered": "登记建档 登记", "held": "召开", "hold": "召开",
    "built": "建成 建设", "build": "建成 建设", "set up": "设立 建立", "established": "设立 建立",
    "cleaned up": "治理 清理", "cleaned": "治理 清理", "governance": "治理", "renovated": "改造 整治",
    "renovation": "改造", "visited": "走访 接待", "collected": "征集 收集", "solicited": "征集",
    "handled": "办理", "cases": "案件", "enterprises": "企业", "companies": "企业",
    "school places": "学位", "places": "学位", "students": "学生", "teachers": "教师",
    "population": "人口", "aging": "老龄化 人口老龄化", "ageing": "老龄化 人口老龄化",
    "urban districts": "城市区", "urban": "城市", "community": "社区", "communities": "社区 小区",
    "residential communities": "小区", "subdistrict": "街道", "street": "街道", "streets": "街道",
    "town": "镇", "towns": "乡镇", "township": "乡镇", "county": "县", "district": "区", "city": "市",
    "members": "组成人员 成员", "member": "成员", "chairman": "主任", "director": "主任",
    "vice chairman": "副主任", "deputy director": "副主任", "author": "作者", "editor": "主编",
    # quantities and time
    "how many": "多少", "how much": "多少", "number": "数量", "percentage": "比例 率", "rate": "率",
    "year": "年", "first half": "上半年", "second half": "下半年", "plan": "打算 计划",
    # places
    "luoyang": "洛阳", "luolong": "洛龙区", "xin'an": "新安县", "xinan": "新安县",
    "zhengzhou": "郑州", "zhongyuan": "中原区", "yingkou": "营口", "bayuquan": "鲅鱼圈区",
    "gaizhou": "盖州市", "dashiqiao": "大石桥市", "laobian": "老边区", "zhanqian": "站前区",
    "xishi": "西市区", "ruyang": "汝阳县", "chanhe": "瀍河", "yiyang": "宜阳县", "jianxi": "涧西区",
    "henan": "河南", "liaoning": "辽宁",
}
_PHRASES = sorted(GLOSSARY, key=len, reverse=True)
_PATTERN = re.compile(
    r"(?<![a-z])(" + "|".join(re.escape(p) for p in _PHRASES) + r")(?:s|es)?(?![a-z])", re.IGNORECASE
)


def is_english(text: str) -> bool:
    letters = sum(c.isascii() and c.isalpha() for c in text)
    cjk = sum("\u4e00" <= c <= "\u9fff" for c in text)
    return letters > 3 * max(cjk, 1)


def to_chinese_terms(text: str) -> str:
    """Chinese terms for the glossary phrases in an English text, plus any figures it names."""
    terms: list[str] = []
    lowered = text.lower()
    for m in _PATTERN.finditer(lowered):
        terms.extend(GLOSSARY[m.group(1).lower()].split())
    for year in re.findall(r"\b(?:19|20)\d{2}\b", text):
        terms.append(f"{year}年")
    for age in re.findall(r"\b(\d{1,3})(?: years old| years)? (?:and|or) (?:over|above|older)\b", lowered):
        terms.append(f"{age}岁以上")
    for age in re.findall(r"\b(?:over|above) (?:the age of )?(\d{1,3})\b(?! percent| %)", lowered):
        terms.append(f"{age}岁以上")
    return " ".join(dict.fromkeys(terms))


def expand_query(question: str) -> str:
    """The question itself, with Chinese terms appended when it is English."""
    if not is_english(question):
        return question
    zh = to_chinese_terms(question)
    return f"{question} {zh}".strip()


# words of an English question that carry no topic
_FUNCTION_WORDS = set("""a an the how many much what which who whom whose when where why is are was were be been
being do does did done has have had in on of for to from by with at as and or but its it their there this that
these those any all each per into about up out over under than then so such can could will would should may
might must shall our your his her they them we you i me my he she also not no yes total number amount
use used using live lives""".split())


def glossary_coverage(text: str) -> tuple[float, list[str]]:
    """The share of an English question's topic words the glossary knows, and the ones it
    does not. A question whose words are mostly unknown has no Chinese terms to search for,
    so an answer to it would be a guess."""
    lowered = text.lower()
    known = [m.span(1) for m in _PATTERN.finditer(lowered)]
    words = [(m.start(), m.group(0)) for m in re.finditer(r"[a-z][a-z'-]*", lowered)]
    topic = [(at, w) for at, w in words if w not in _FUNCTION_WORDS and len(w) > 2]
    unknown = [w for at, w in topic if not any(s <= at < e for s, e in known)]
    return (1 - len(unknown) / len(topic) if topic else 1.0), unknown
